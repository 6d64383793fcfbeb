package forge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzHook checks, for forge kind, that ParseHook never panics on a signed
// body of any content, under any event header and content type, and that
// it returns exactly a Hook or an error of a documented kind: ignored, or a
// *PayloadError. A parsed hook has an event, a ref and a commit. An
// unsigned copy of the same request is always refused. The corpus starts
// from the forge's fixtures.
func fuzzHook(f *testing.F, kind Kind, events ...string) {
	files, err := filepath.Glob(filepath.Join("testdata", "hooks", string(kind), "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, ev := range events {
			f.Add(ev, false, data)
		}
	}
	f.Add(events[0], true, []byte("payload=%7B%7D"))
	f.Add(events[0], true, []byte("payload=%zz"))
	f.Add(events[0], false, []byte(`{"ref": 1}`))
	f.Fuzz(func(t *testing.T, event string, form bool, body []byte) {
		r := deliver(kind, event, body, testSecret)
		if form {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		hook, err := ParseHook(r, kind, testSecret)
		var pe *PayloadError
		switch {
		case err == nil && hook == nil:
			t.Fatal("ParseHook returned neither a hook nor an error")
		case err == nil:
			if hook.Event == "" || hook.Ref == "" || hook.SHA == "" {
				t.Fatalf("hook without event, ref or commit: %+v", hook)
			}
			if strings.HasSuffix(hook.Message, "\n") {
				t.Fatalf("message keeps its trailing newline: %q", hook.Message)
			}
		case hook != nil:
			t.Fatalf("ParseHook returned a hook and the error %v", err)
		case errors.Is(err, ErrSignature):
			t.Fatalf("a correctly signed request was refused: %v", err)
		case !errors.Is(err, ErrIgnored) && !errors.As(err, &pe):
			t.Fatalf("error of no documented kind: %v", err)
		}
		unsigned := deliver(kind, event, body, "another secret")
		if _, err := ParseHook(unsigned, kind, testSecret); !errors.Is(err, ErrSignature) {
			t.Fatalf("a request signed with another secret: err = %v, want ErrSignature", err)
		}
	})
}

// FuzzGitHubHook fuzzes the GitHub webhook parser.
func FuzzGitHubHook(f *testing.F) { fuzzHook(f, GitHub, "push", "pull_request") }

// FuzzGiteaHook fuzzes the Gitea webhook parser.
func FuzzGiteaHook(f *testing.F) { fuzzHook(f, Gitea, "push", "pull_request") }

// FuzzGitLabHook fuzzes the GitLab webhook parser.
func FuzzGitLabHook(f *testing.F) {
	fuzzHook(f, GitLab, "Push Hook", "Tag Push Hook", "Merge Request Hook")
}
