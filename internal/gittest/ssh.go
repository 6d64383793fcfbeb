package gittest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/testnet"
)

// SSHServer is a real OpenSSH sshd, run by the test on a loopback port,
// that lets in the holder of one key, as the user running the test, so
// that git can fetch over ssh:// with a deploy key.
type SSHServer struct {
	// User is the login name the server accepts.
	User string
	// Port is the loopback port it listens on.
	Port int
	// Key is the private key it accepts, in OpenSSH form.
	Key string
	// KnownHosts is the known_hosts line of its host key.
	KnownHosts string
}

// URL returns the ssh URL of the repository at the absolute path.
func (s *SSHServer) URL(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.User, s.Port, path)
}

// StartSSH starts sshd for the rest of the test. It skips the test (fails
// it when CI=true) when sshd or ssh-keygen is missing.
func StartSSH(t testing.TB) *SSHServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if sshd, err = exec.LookPath("/usr/sbin/sshd"); err != nil {
			skipOrFail(t, "sshd (Debian's openssh-server) is required: %v", err)
		}
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		skipOrFail(t, "ssh-keygen is required: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		// sshd run by root wants its privilege separation directory,
		// which the ssh service creates when it starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			skipOrFail(t, "sshd needs /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	keygen := func(name string) (priv, pub string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		privData, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pubData, err := os.ReadFile(p + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return string(privData), strings.TrimSpace(string(pubData))
	}
	_, hostPub := keygen("host_key")
	clientKey, clientPub := keygen("client_key")
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(clientPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testnet.FreePort(t)
	config := strings.Join([]string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_key"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + u.Username,
		"",
	}, "\n")
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, sshd, "-D", "-e", "-f", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		skipOrFail(t, "starting sshd: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// sshd says "Server listening on 127.0.0.1 port N." once it accepts
	// connections; wait for that line, not for a time.
	listening := make(chan struct{})
	var log strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !said && strings.Contains(sc.Text(), "Server listening on") {
				said = true
				close(listening)
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-listening:
	case <-done:
		t.Fatalf("sshd exited before listening:\n%s", log.String())
	case <-time.After(time.Minute):
		t.Fatal("sshd did not start listening within a minute")
	}
	return &SSHServer{
		User: u.Username, Port: port, Key: clientKey,
		KnownHosts: fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostPub),
	}
}
