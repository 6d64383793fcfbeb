package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// ferry lint checks "kind: service" documents, as the server reads them.
func TestLintChecksServices(t *testing.T) {
	dir := t.TempDir()
	const pipeline = "kind: pipeline\nname: b\nsteps: [{name: s, image: busybox}]\n---\n"
	for _, tc := range []struct {
		service string
		code    int
		out     string
	}{
		{"kind: service\nname: app\nenvironments: [{name: prod, nodes: {role: web}, strategy: {type: canary, steps: [{nodes: 1, pause: manual}]}}]\n", ExitOK, ""},
		{"kind: service\nname: app\nenvironments: [{name: prod, nodes: {role: web}, strategy: blue-grean}]\n", ExitInvalid,
			`/.ferry.yml:7:59: environments[0].strategy: unknown value "blue-grean"; did you mean "blue-green"?; valid values are: rolling, canary, blue-green` + "\n"},
	} {
		if err := os.WriteFile(filepath.Join(dir, ".ferry.yml"), []byte(pipeline+tc.service), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		want := tc.out
		if want != "" {
			want = dir + want
		}
		if code := Lint(dir, "", false, &out, &errOut); code != tc.code || out.String() != want {
			t.Errorf("lint: exit %d, output %q %q; want %d, %q", code, out.String(), errOut.String(), tc.code, want)
		}
	}
}
