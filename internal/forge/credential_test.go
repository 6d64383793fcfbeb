package forge

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
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

// TestSSHDeployKey reads a repository over ssh:// from a real sshd that
// lets in one key: refused without it, and read with it, the server's host
// key checked against the known_hosts given with the key. The key reaches
// ssh as a file in a private temporary directory, removed after each git
// command, and never on a command line.
func TestSSHDeployKey(t *testing.T) {
	args := gittest.RecordArgs(t) // sets PATH: not parallel
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	o := newOrigin(t)
	_, second := o.seed()
	srv := gittest.StartSSH(t)
	url := srv.URL(o.bare)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err := LsRemote(ctx, url)
	if err == nil || !errors.Is(err, ErrAuth) {
		t.Fatalf("LsRemote without the key: %v; want an error matching ErrAuth", err)
	}
	cred := gitauth.Credential{SSHKey: srv.Key, KnownHosts: srv.KnownHosts}
	refs, err := LsRemote(ctx, url, WithCredential(cred))
	if err != nil {
		t.Fatalf("LsRemote with the deploy key: %v", err)
	}
	if refs["refs/heads/main"] != second {
		t.Errorf("refs = %v", refs)
	}
	m := NewMirrors(filepath.Join(tmp, "mirrors")).Get(url, WithCredential(cred))
	if data, err := m.ReadFile(ctx, second, ".drone.yml"); err != nil || !strings.Contains(string(data), "v2") {
		t.Fatalf("Mirror.ReadFile with the deploy key = %q, %v", data, err)
	}

	// A host whose key is not the one known is refused.
	other := gitauth.Credential{SSHKey: srv.Key, KnownHosts: strings.Replace(srv.KnownHosts, "]:", "]:1", 1)}
	if _, err := LsRemote(ctx, url, WithCredential(other)); err == nil || !strings.Contains(err.Error(), "Host key verification failed") {
		t.Errorf("LsRemote with a known_hosts for another host: %v; want the host key refused", err)
	}

	if strings.Contains(args(), "PRIVATE KEY") {
		t.Errorf("a git command line holds the key:\n%s", args())
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ferry-ssh-") {
			t.Errorf("the key's directory %s is left behind", e.Name())
		}
	}
}
