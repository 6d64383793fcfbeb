// Package gitauth hands a repository's credential to git without putting
// it on a command line or in a file others can read. The server's git
// reads (internal/forge) and the agent's clone (internal/agent) both use
// it, so the two authenticate the same way.
//
// An HTTPS credential (a username and a password or access token) becomes
// an `http.<scheme>://<host>/.extraHeader` of HTTP basic authentication,
// passed through git's GIT_CONFIG_COUNT/KEY/VALUE environment: it goes to
// that host only, and is in neither argv nor .git/config. An SSH deploy key
// is written to a file of mode 0600 in a directory of mode 0700, which
// GIT_SSH_COMMAND names; Env's cleanup removes it.
package gitauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Credential is what git needs to read a private repository: either an
// HTTPS username and password (or access token), or an SSH private key.
// The zero Credential is no credential.
type Credential struct {
	// Username and Password authenticate over http(s).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SSHKey is a private key in OpenSSH or PEM form, for ssh URLs.
	SSHKey string `json:"ssh_key,omitempty"`
	// KnownHosts, if set, is the known_hosts content the SSH server's key
	// is checked against. Without it, ssh trusts a host it has not seen
	// before and remembers it (StrictHostKeyChecking=accept-new).
	KnownHosts string `json:"known_hosts,omitempty"`
}

// IsZero reports whether c holds no credential.
func (c Credential) IsZero() bool { return c == Credential{} }

// Kind names the credential's kind: "ssh", "https", or "" for none.
func (c Credential) Kind() string {
	switch {
	case c.SSHKey != "":
		return KindSSH
	case c.Password != "" || c.Username != "":
		return KindHTTPS
	}
	return ""
}

// The kinds of credential.
const (
	KindHTTPS = "https"
	KindSSH   = "ssh"
)

// Transport returns how git reaches remote: "https" for http and https
// URLs, "ssh" for ssh URLs and scp-like user@host:path, "" for the others
// (file, git, a local path), which take no credential.
func Transport(remote string) string {
	if u, err := url.Parse(remote); err == nil && u.Scheme != "" {
		switch strings.ToLower(u.Scheme) {
		case "http", "https":
			return KindHTTPS
		case "ssh", "git+ssh", "ssh+git":
			return KindSSH
		}
		return ""
	}
	if host, path, ok := strings.Cut(remote, ":"); ok && host != "" && path != "" && !strings.Contains(host, "/") {
		return KindSSH
	}
	return ""
}

// Check reports whether c can be used for remote: an HTTPS credential needs
// an http(s) URL and a password, an SSH key an ssh URL and a key that looks
// like one.
func (c Credential) Check(remote string) error {
	switch c.Kind() {
	case "":
		return nil
	case KindHTTPS:
		if c.Password == "" {
			return errors.New("an https credential needs a password or token")
		}
		if strings.ContainsAny(c.Username, ":\r\n") {
			return errors.New("the credential's username must not contain ':' or a line break")
		}
		if t := Transport(remote); t != KindHTTPS {
			return fmt.Errorf("an https credential (username and token) needs an http(s) git URL; %s is not one", redacted(remote))
		}
	case KindSSH:
		if c.Username != "" || c.Password != "" {
			return errors.New("give either an SSH key or a username and token, not both")
		}
		if !strings.Contains(c.SSHKey, "PRIVATE KEY-----") {
			return errors.New("the SSH key is not a private key: it must start with -----BEGIN … PRIVATE KEY-----")
		}
		if t := Transport(remote); t != KindSSH {
			return fmt.Errorf("an SSH key needs an ssh git URL (ssh://… or user@host:path); %s is not one", redacted(remote))
		}
	}
	return nil
}

// redacted returns remote without a password it may hold.
func redacted(remote string) string {
	if u, err := url.Parse(remote); err == nil && u.User != nil {
		return u.Redacted()
	}
	return remote
}

// Env returns the environment entries that make git authenticate to remote
// with c, to be appended to the command's environment, and a cleanup that
// removes any file Env wrote; call it when git has finished. base is the
// environment the entries will join: GIT_CONFIG_COUNT is continued from
// it. A zero c, or a credential of the wrong kind for remote, adds nothing.
func Env(remote string, c Credential, base []string) (env []string, cleanup func(), err error) {
	cleanup = func() {}
	switch {
	case c.Kind() == KindHTTPS && Transport(remote) == KindHTTPS:
		u, err := url.Parse(remote)
		if err != nil {
			return nil, cleanup, fmt.Errorf("parsing git URL: %w", err)
		}
		if u.Host == "" {
			return nil, cleanup, errors.New("parsing git URL: it has no host")
		}
		token := base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))
		n, _ := strconv.Atoi(lookup(base, "GIT_CONFIG_COUNT"))
		return []string{
			fmt.Sprintf("GIT_CONFIG_KEY_%d=http.%s://%s/.extraHeader", n, strings.ToLower(u.Scheme), u.Host),
			fmt.Sprintf("GIT_CONFIG_VALUE_%d=Authorization: Basic %s", n, token),
			fmt.Sprintf("GIT_CONFIG_COUNT=%d", n+1),
		}, cleanup, nil
	case c.Kind() == KindSSH && Transport(remote) == KindSSH:
		dir, err := os.MkdirTemp("", "ferry-ssh-*")
		if err != nil {
			return nil, cleanup, fmt.Errorf("writing the SSH key: %w", err)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		key := filepath.Join(dir, "id")
		data := c.SSHKey
		if !strings.HasSuffix(data, "\n") {
			data += "\n" // ssh refuses a key without its final newline
		}
		if err := os.WriteFile(key, []byte(data), 0o600); err != nil {
			cleanup()
			return nil, func() {}, fmt.Errorf("writing the SSH key: %w", err)
		}
		var known string
		if c.KnownHosts != "" {
			known = filepath.Join(dir, "known_hosts")
			if err := os.WriteFile(known, []byte(c.KnownHosts), 0o600); err != nil {
				cleanup()
				return nil, func() {}, fmt.Errorf("writing known_hosts: %w", err)
			}
		}
		return []string{"GIT_SSH_COMMAND=" + SSHCommand(key, known), "GIT_SSH_VARIANT=ssh"}, cleanup, nil
	}
	return nil, cleanup, nil
}

// SSHCommand returns the GIT_SSH_COMMAND that authenticates with the key
// in file keyFile and nothing else, never prompts, and checks the host
// against knownHosts when it is not empty (otherwise it accepts a host it
// has not seen before and remembers it).
func SSHCommand(keyFile, knownHosts string) string {
	args := []string{"ssh", "-i", shellQuote(keyFile), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"}
	if knownHosts != "" {
		args = append(args, "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+shellQuote(knownHosts))
	} else {
		args = append(args, "-o", "StrictHostKeyChecking=accept-new")
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for sh, which runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lookup returns the value of the last name=value entry of env.
func lookup(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
