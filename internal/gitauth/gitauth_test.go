package gitauth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"

func TestTransport(t *testing.T) {
	for remote, want := range map[string]string{
		"https://git.example.com/a/b.git": KindHTTPS,
		"HTTP://git.example.com/a/b":      KindHTTPS,
		"ssh://git@git.example.com/a/b":   KindSSH,
		"git@github.com:a/b.git":          KindSSH,
		"git://git.example.com/a/b":       "",
		"file:///srv/git/b.git":           "",
		"/srv/git/b.git":                  "",
	} {
		if got := Transport(remote); got != want {
			t.Errorf("Transport(%q) = %q, want %q", remote, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		cred   Credential
		remote string
		err    string // a part of the error, or "" for none
	}{
		{Credential{}, "file:///x/y", ""},
		{Credential{Username: "bot", Password: "tok"}, "https://h/a/b", ""},
		{Credential{Password: "tok"}, "https://h/a/b", ""},
		{Credential{Username: "bot"}, "https://h/a/b", "needs a password or token"},
		{Credential{Username: "b:t", Password: "tok"}, "https://h/a/b", "must not contain ':'"},
		{Credential{Username: "bot", Password: "tok"}, "git@h:a/b", "needs an http(s) git URL; git@h:a/b is not one"},
		{Credential{Username: "bot", Password: "tok"}, "ssh://h/a/b", "ssh://h/a/b is not one"},
		{Credential{SSHKey: testKey}, "ssh://git@h/a/b", ""},
		{Credential{SSHKey: testKey}, "git@h:a/b", ""},
		{Credential{SSHKey: testKey}, "https://h/a/b", "needs an ssh git URL"},
		{Credential{SSHKey: "ssh-ed25519 AAAA public"}, "git@h:a/b", "not a private key"},
		{Credential{SSHKey: testKey, Password: "x"}, "git@h:a/b", "not both"},
	} {
		err := c.cred.Check(c.remote)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("Check(%+v, %q) = %v, want nil", c.cred, c.remote, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Check(%+v, %q) = %v, want an error with %q", c.cred, c.remote, err, c.err)
		}
	}
}

func TestEnvHTTPS(t *testing.T) {
	c := Credential{Username: "bot", Password: "s3cret"}
	env, cleanup, err := Env("https://git.example.com:8443/a/b.git", c, []string{"PATH=/bin", "GIT_CONFIG_COUNT=2"})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	auth := base64.StdEncoding.EncodeToString([]byte("bot:s3cret"))
	want := []string{
		"GIT_CONFIG_KEY_2=http.https://git.example.com:8443/.extraHeader",
		"GIT_CONFIG_VALUE_2=Authorization: Basic " + auth,
		"GIT_CONFIG_COUNT=3",
	}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Errorf("Env = %q, want %q", env, want)
	}
	// The other transports get nothing: the credential is not sent where
	// it does not belong.
	for _, remote := range []string{"ssh://git.example.com/a/b", "file:///a/b"} {
		if env, _, err := Env(remote, c, nil); err != nil || env != nil {
			t.Errorf("Env(%q) = %q, %v; want nothing", remote, env, err)
		}
	}
}

// TestEnvSSH checks the GIT_SSH_COMMAND Env builds and the key file it
// names: mode 0600 in a private directory, removed by the cleanup. No SSH
// server runs on the test machines, so the command itself is not run here.
func TestEnvSSH(t *testing.T) {
	for _, known := range []string{"", "git.example.com ssh-ed25519 AAAAC3Nza\n"} {
		c := Credential{SSHKey: testKey, KnownHosts: known}
		env, cleanup, err := Env("git@git.example.com:a/b.git", c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != 2 || env[1] != "GIT_SSH_VARIANT=ssh" {
			t.Fatalf("Env = %q", env)
		}
		cmd, ok := strings.CutPrefix(env[0], "GIT_SSH_COMMAND=")
		if !ok {
			t.Fatalf("Env = %q, want GIT_SSH_COMMAND first", env)
		}
		// ssh -i 'DIR/id' …: the key is in a file, not in the command.
		if strings.Contains(cmd, "OPENSSH") {
			t.Errorf("the command %q holds the key", cmd)
		}
		start := strings.Index(cmd, "-i '") + len("-i '")
		keyFile := cmd[start : start+strings.Index(cmd[start:], "'")]
		wantCmd := "ssh -i '" + keyFile + "' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
		if known != "" {
			wantCmd = "ssh -i '" + keyFile + "' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile='" +
				filepath.Join(filepath.Dir(keyFile), "known_hosts") + "'"
		}
		if cmd != wantCmd {
			t.Errorf("GIT_SSH_COMMAND = %q, want %q", cmd, wantCmd)
		}
		st, err := os.Stat(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
		}
		if st, err := os.Stat(filepath.Dir(keyFile)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("key directory: %v, %v; want mode 0700", st, err)
		}
		if data, _ := os.ReadFile(keyFile); string(data) != testKey+"\n" {
			t.Errorf("key file holds %q", data)
		}
		if known != "" {
			if data, _ := os.ReadFile(filepath.Join(filepath.Dir(keyFile), "known_hosts")); string(data) != known {
				t.Errorf("known_hosts holds %q", data)
			}
		}
		cleanup()
		if _, err := os.Stat(filepath.Dir(keyFile)); !os.IsNotExist(err) {
			t.Errorf("after cleanup the key directory is still there: %v", err)
		}
	}
}

func TestSSHCommandQuotes(t *testing.T) {
	got := SSHCommand("/tmp/it's here/id", "")
	if want := `ssh -i '/tmp/it'\''s here/id' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new`; got != want {
		t.Errorf("SSHCommand = %q, want %q", got, want)
	}
}
