package e2e

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/gittest"
)

// privatePipeline checks, from inside its steps, that the repo's token is
// nowhere a step can see it unless the step asks for it: not in the
// environment (in plain text or as git's basic-auth header), not in the
// checkout's .git. The second step asks for it with from_secret, as a
// custom clone step would. TOKEN and AUTH are replaced by the test.
const privatePipeline = `kind: pipeline
type: exec
name: default
steps:
- name: no-credential
  commands:
  - if env | grep -qF 'TOKEN'; then echo "token in env"; else echo "env clean"; fi
  - if env | grep -qF 'AUTH'; then echo "auth header in env"; else echo "no auth header"; fi
  - if grep -rqF 'TOKEN' .git; then echo "token in .git"; else echo ".git clean"; fi
  - git log -1 --format=%s
- name: asks-for-netrc
  environment:
    PASSWORD:
      from_secret: netrc_password
  commands:
  - if [ "$PASSWORD" = 'TOKEN' ]; then echo "netrc given for $DRONE_NETRC_USERNAME at $DRONE_NETRC_MACHINE"; else echo "netrc missing"; fi
`

// TestPrivateRepoCredential runs a build of a repository that git http-
// backend serves only with HTTP basic authentication. Without a credential
// the repo cannot be added, and the answer says what to give. With one, the
// server reads the pipeline and the agent clones, and the build succeeds;
// the token is never in an API answer, the server's or the agent's output,
// a step's environment, the checkout, or the data directory in plain text,
// and a step gets it only by asking. Removing the credential makes the next
// build fail with a message that names it.
func TestPrivateRepoCredential(t *testing.T) {
	t.Parallel()
	const user = "ci-bot"
	token := "tok-" + randomHex(t, 16)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	root := t.TempDir()
	// The pipeline holds each needle cut in two quoted halves, which the
	// shell joins: the file itself (stored with the build) holds neither.
	split := func(s string) string { return s[:len(s)/2] + "''" + s[len(s)/2:] }
	pipeline := strings.NewReplacer("TOKEN", split(token), "AUTH", split(auth)).Replace(privatePipeline)
	gittest.NewWithOrigin(t, root, "private", map[string]string{".drone.yml": pipeline})
	gate := &gittest.BasicAuth{User: user, Password: token}
	base := gittest.Serve(t, root, gate.Wrap)
	gitURL := base + "/private.git"

	srv := startServer(t, serverOptions{})
	c := adminAPI(t, srv)
	const slug = "acme/private"

	// Without a credential, the add fails and says what to give.
	err := c.try("POST", "/api/repos", map[string]any{"git_url": gitURL, "slug": slug, "poll_interval": "0s"}, http.StatusCreated, nil)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Body, "refused access") ||
		!strings.Contains(ae.Body, "--credential-token-file") {
		t.Fatalf("adding the private repo without a credential: %v; want 400 saying it needs a credential", err)
	}
	if gate.Refused.Load() == 0 {
		t.Fatal("the git server never refused a request: the test does not test authentication")
	}

	// With a wrong token, the add fails too, saying the credential was
	// refused.
	err = c.try("POST", "/api/repos", map[string]any{"git_url": gitURL, "slug": slug, "poll_interval": "0s",
		"credential": map[string]string{"username": user, "password": "wrong-" + token}}, http.StatusCreated, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Body, "refused the https credential") {
		t.Fatalf("adding the private repo with a wrong token: %v; want 400 saying the credential was refused", err)
	}

	// With the credential: added, and the answer shows only that it is set.
	// Trusted: the pipeline runs on the host (type: exec).
	status, body, err := c.call("POST", "/api/repos", map[string]any{"git_url": gitURL, "slug": slug, "poll_interval": "0s",
		"trusted": true, "credential": map[string]string{"username": user, "password": token}})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("adding the private repo with its credential: %d %s %v", status, body, err)
	}
	if !strings.Contains(string(body), `"credential":{"set":true,"kind":"https","username":"ci-bot"}`) {
		t.Errorf("the answer %s does not say that an https credential is set", body)
	}
	answers := []string{string(body), c.text("/api/repos/" + slug), c.text("/api/repos/" + slug + "/credential"), c.text("/api/repos")}

	agent := startAgent(t, srv.URL, c.agentToken("private-agent"), agentOptions{Name: "private-agent"})
	c.manualBuild(slug, "main", "")
	b := c.waitBuild(slug, 1, 60*time.Second, nil)
	if b.Status != "success" {
		t.Fatalf("build of the private repo %s: %s", b.Status, describe(b))
	}
	log1, log2 := c.stepLog(slug, 1, 1, 1), c.stepLog(slug, 1, 1, 2)
	for _, want := range []string{"env clean", "no auth header", ".git clean", "Initial commit"} {
		if !strings.Contains(log1, want) {
			t.Errorf("step no-credential log lacks %q:\n%s", want, log1)
		}
	}
	host := strings.Split(strings.TrimPrefix(base, "http://"), "/")[0]
	host, _, _ = strings.Cut(host, ":")
	if want := "netrc given for " + user + " at " + host; !strings.Contains(log2, want) {
		t.Errorf("step asks-for-netrc log lacks %q:\n%s", want, log2)
	}
	answers = append(answers, log1, log2, c.text("/api/repos/"+slug+"/builds/1"))
	for _, a := range answers {
		if strings.Contains(a, token) || strings.Contains(a, auth) {
			t.Errorf("an API answer shows the token:\n%s", a)
		}
	}
	for _, p := range []*proc{srv.proc, agent} {
		if out := p.output(); strings.Contains(out, token) || strings.Contains(out, auth) {
			t.Errorf("the output of %s shows the token", p.name)
		}
	}
	// The data directory (database, mirrors) holds it sealed only.
	err = filepath.WalkDir(srv.opts.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), token) || strings.Contains(string(data), auth) {
			t.Errorf("%s holds the token in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Without the credential, a new build cannot even be started, and the
	// answer says why.
	c.do("DELETE", "/api/repos/"+slug+"/credential", nil, http.StatusNoContent, nil)
	err = c.try("POST", "/api/repos/"+slug+"/builds", map[string]string{"branch": "main"}, http.StatusCreated, nil)
	if !errors.As(err, &ae) || !strings.Contains(ae.Body, "Authentication failed") && !strings.Contains(ae.Body, "could not read Username") {
		t.Fatalf("a build after removing the credential: %v; want git's refusal", err)
	}
	if !strings.Contains(ae.Body, "credential") {
		t.Errorf("the refusal %q does not name the credential", ae.Body)
	}
}
