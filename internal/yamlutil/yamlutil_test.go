package yamlutil

import (
	"testing"

	"go.yaml.in/yaml/v4"
)

func TestDerefAndDescribe(t *testing.T) {
	var doc yaml.Node
	src := "a: &x {k: v}\nb: *x\nc: [1]\nd: ~\ne: hi\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0]
	got := map[string]string{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		got[m.Content[i].Value] = Describe(Deref(m.Content[i+1]))
	}
	want := map[string]string{"a": "a map", "b": "a map", "c": "a list", "d": "nothing", "e": `"hi"`}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: Describe(Deref) = %q, want %q", k, got[k], w)
		}
	}
	if Deref(m.Content[3]) != m.Content[1] {
		t.Error("Deref of an alias is not the node it names")
	}
	if Deref(nil) != nil {
		t.Error("Deref(nil) is not nil")
	}
	if s := Describe(&yaml.Node{Kind: yaml.DocumentNode}); s != "something else" {
		t.Errorf("Describe(document) = %q", s)
	}
}
