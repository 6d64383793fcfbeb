package forge

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gitauth"
	"github.com/ferryci/ferry/internal/gittest"
)

// TestCredentialNotInArgs reads a repository behind HTTP basic
// authentication the three ways the server does (ls-remote, a one-off
// read, a mirror) and checks that git got the token through its
// environment only: no git command line holds it.
func TestCredentialNotInArgs(t *testing.T) {
	args := gittest.RecordArgs(t) // sets PATH: not parallel
	o := newOrigin(t)
	_, second := o.seed()
	auth := &gittest.BasicAuth{User: "ci-bot", Password: "tok-" + strings.Repeat("a1", 12)}
	url := gittest.Serve(t, o.root, auth.Wrap) + "/repo.git"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cred := WithCredential(gitauth.Credential{Username: auth.User, Password: auth.Password})

	if _, err := LsRemote(ctx, url, cred); err != nil {
		t.Fatalf("LsRemote: %v", err)
	}
	if _, err := ReadFileAt(ctx, url, second, ".drone.yml", cred); err != nil {
		t.Fatalf("ReadFileAt: %v", err)
	}
	m := NewMirrors(t.TempDir()).Get(url, cred)
	if _, err := m.ReadFile(ctx, second, ".drone.yml"); err != nil {
		t.Fatalf("Mirror.ReadFile: %v", err)
	}
	if auth.Admitted.Load() == 0 || auth.Refused.Load() != 0 {
		t.Errorf("the git server admitted %d and refused %d requests; want only admitted ones", auth.Admitted.Load(), auth.Refused.Load())
	}
	recorded := args()
	for _, cmd := range []string{"ls-remote", "fetch"} {
		if !strings.Contains(recorded, cmd) {
			t.Fatalf("recorded command lines %q lack %s: the recording does not work", recorded, cmd)
		}
	}
	basic := base64.StdEncoding.EncodeToString([]byte(auth.User + ":" + auth.Password))
	if strings.Contains(recorded, auth.Password) || strings.Contains(recorded, basic) {
		t.Errorf("a git command line holds the token:\n%s", recorded)
	}
}
