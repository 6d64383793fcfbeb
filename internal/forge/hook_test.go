package forge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testSecret = "It's a Secret to Everybody"

// hmacHex computes the signature independently of the code under test.
func hmacHex(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// deliver builds a request carrying the headers forge kind sends with a
// webhook, signed with secret.
func deliver(kind Kind, event string, body []byte, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	switch kind {
	case GitHub:
		r.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
		r.Header.Set("X-GitHub-Event", event)
		r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		r.Header.Set("X-GitHub-Hook-ID", "292430182")
		r.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex(body, secret))
	case Gitea:
		// Gitea sends its own headers, Gogs' and GitHub's (see its
		// services/webhook/deliver.go).
		sha1mac := hmac.New(sha1.New, []byte(secret))
		sha1mac.Write(body)
		id := "f6266f16-1bf3-46a5-9ea4-602e06ead473"
		r.Header.Set("X-Gitea-Delivery", id)
		r.Header.Set("X-Gitea-Event", event)
		r.Header.Set("X-Gitea-Event-Type", event)
		r.Header.Set("X-Gitea-Signature", hmacHex(body, secret))
		r.Header.Set("X-Gogs-Delivery", id)
		r.Header.Set("X-Gogs-Event", event)
		r.Header.Set("X-Gogs-Signature", hmacHex(body, secret))
		r.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(sha1mac.Sum(nil)))
		r.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex(body, secret))
		r.Header.Set("X-GitHub-Delivery", id)
		r.Header.Set("X-GitHub-Event", event)
	case GitLab:
		r.Header.Set("User-Agent", "GitLab/18.5.0")
		r.Header.Set("X-Gitlab-Event", event)
		r.Header.Set("X-Gitlab-Token", secret)
		r.Header.Set("X-Gitlab-Instance", "https://gitlab.example.com")
		r.Header.Set("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
	}
	return r
}

func fixture(t *testing.T, kind Kind, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hooks", string(kind), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hookCases are the fixtures, with the event header each is delivered
// under.
var hookCases = []struct {
	kind  Kind
	event string
	name  string
}{
	{GitHub, "push", "push"},
	{GitHub, "push", "push_tag_annotated"},
	{GitHub, "push", "push_branch_deleted"},
	{GitHub, "pull_request", "pull_request_opened"},
	{GitHub, "pull_request", "pull_request_synchronize_fork"},
	{GitHub, "pull_request", "pull_request_closed"},
	{GitHub, "ping", "ping"},
	{Gitea, "push", "push"},
	{Gitea, "push", "push_tag"},
	{Gitea, "push", "push_branch_deleted"},
	{Gitea, "push", "push_legacy"},
	{Gitea, "pull_request", "pull_request_opened_fork"},
	{Gitea, "pull_request", "pull_request_synchronized"},
	{Gitea, "pull_request", "pull_request_closed"},
	{GitLab, "Push Hook", "push"},
	{GitLab, "Tag Push Hook", "tag_push"},
	{GitLab, "Push Hook", "push_deleted"},
	{GitLab, "Merge Request Hook", "merge_request_open"},
	{GitLab, "Merge Request Hook", "merge_request_update_fork"},
	{GitLab, "Merge Request Hook", "merge_request_update_title"},
	{GitLab, "Merge Request Hook", "merge_request_merge"},
}

// TestParseHookGolden parses every fixture and compares the Hook, or the
// reason it is ignored, with testdata/hooks/FORGE/NAME.golden. Run with
// -update to rewrite the goldens, and review the diff.
func TestParseHookGolden(t *testing.T) {
	for _, tc := range hookCases {
		t.Run(string(tc.kind)+"/"+tc.name, func(t *testing.T) {
			body := fixture(t, tc.kind, tc.name)
			hook, err := ParseHook(deliver(tc.kind, tc.event, body, testSecret), tc.kind, testSecret)
			var got []byte
			switch {
			case errors.Is(err, ErrIgnored):
				got = []byte("ignored: " + err.Error() + "\n")
			case err != nil:
				t.Fatalf("ParseHook: %v", err)
			default:
				got, err = json.MarshalIndent(hook, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, '\n')
			}
			golden := filepath.Join("testdata", "hooks", string(tc.kind), tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ParseHook result differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func mustParse(t *testing.T, kind Kind, event, name string) *Hook {
	t.Helper()
	hook, err := ParseHook(deliver(kind, event, fixture(t, kind, name), testSecret), kind, testSecret)
	if err != nil {
		t.Fatalf("ParseHook(%s %s): %v", kind, name, err)
	}
	return hook
}

// TestParseHookRules states the rules the goldens embody, one by one.
func TestParseHookRules(t *testing.T) {
	t.Run("github annotated tag builds the commit, not the tag object", func(t *testing.T) {
		h := mustParse(t, GitHub, "push", "push_tag_annotated")
		if h.Event != EventTag || h.Ref != "refs/tags/v1.2.0" || h.Branch != "" {
			t.Errorf("event, ref, branch = %q %q %q; want tag refs/tags/v1.2.0 and no branch", h.Event, h.Ref, h.Branch)
		}
		if h.SHA != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
			t.Errorf("SHA = %s, want the head commit, not the tag object", h.SHA)
		}
	})
	t.Run("gitlab annotated tag builds checkout_sha", func(t *testing.T) {
		h := mustParse(t, GitLab, "Tag Push Hook", "tag_push")
		if h.Event != EventTag || h.SHA != "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" {
			t.Errorf("event, sha = %q %q; want tag da15608…", h.Event, h.SHA)
		}
		if h.Author.Login != "releaser" {
			t.Errorf("author = %+v; with no commit listed it falls back to the pusher", h.Author)
		}
	})
	forks := []struct {
		kind        Kind
		event, name string
		fork        bool
		source      string
	}{
		{GitHub, "pull_request", "pull_request_opened", false, "https://github.com/octo-org/hello-ferry.git"},
		{GitHub, "pull_request", "pull_request_synchronize_fork", true, "https://github.com/drive-by/hello-ferry.git"},
		{Gitea, "pull_request", "pull_request_opened_fork", true, "https://gitea.example.com/outsider/deployer.git"},
		{Gitea, "pull_request", "pull_request_synchronized", false, "https://gitea.example.com/infra/deployer.git"},
		{GitLab, "Merge Request Hook", "merge_request_open", false, "https://gitlab.example.com/acme/payments/billing-api.git"},
		{GitLab, "Merge Request Hook", "merge_request_update_fork", true, "https://gitlab.example.com/extc/billing-api.git"},
	}
	for _, f := range forks {
		t.Run(string(f.kind)+" fork detection "+f.name, func(t *testing.T) {
			h := mustParse(t, f.kind, f.event, f.name)
			if h.PullRequest.Fork != f.fork {
				t.Errorf("Fork = %v, want %v", h.PullRequest.Fork, f.fork)
			}
			if h.PullRequest.SourceRepoCloneURL != f.source {
				t.Errorf("SourceRepoCloneURL = %q, want %q", h.PullRequest.SourceRepoCloneURL, f.source)
			}
			if h.Repo.CloneURL == f.source && f.fork {
				t.Errorf("Repo is the fork; it must be the target repository")
			}
		})
	}
	t.Run("actions are spelled as Drone spells them", func(t *testing.T) {
		for _, c := range []struct {
			kind        Kind
			event, name string
			action      string
		}{
			{GitHub, "pull_request", "pull_request_synchronize_fork", ActionSynchronized},
			{Gitea, "pull_request", "pull_request_synchronized", ActionSynchronized},
			{GitLab, "Merge Request Hook", "merge_request_update_fork", ActionSynchronized},
			{GitLab, "Merge Request Hook", "merge_request_open", ActionOpened},
		} {
			if h := mustParse(t, c.kind, c.event, c.name); h.Action != c.action {
				t.Errorf("%s %s: action %q, want %q", c.kind, c.name, h.Action, c.action)
			}
		}
	})
	t.Run("truncated commit list leaves changed paths unknown", func(t *testing.T) {
		h := mustParse(t, Gitea, "push", "push_legacy")
		if h.ChangedPaths != nil {
			t.Errorf("ChangedPaths = %q, want nil: 2 of 7 commits listed", h.ChangedPaths)
		}
		if h.Message != "Pin the lint image" {
			t.Errorf("Message = %q, want the message of the commit matching after", h.Message)
		}
	})
	t.Run("gitlab redacted email is dropped and internal is private", func(t *testing.T) {
		h := mustParse(t, GitLab, "Push Hook", "push")
		if h.Sender.Email != "" {
			t.Errorf("Sender.Email = %q, want the placeholder dropped", h.Sender.Email)
		}
		if !h.Repo.Private || h.Repo.Slug != "acme/payments/billing-api" || h.Repo.Namespace != "acme/payments" || h.Repo.Name != "billing-api" {
			t.Errorf("Repo = %+v", h.Repo)
		}
	})
	ignored := []struct {
		kind        Kind
		event, name string
	}{
		{GitHub, "push", "push_branch_deleted"},
		{GitHub, "pull_request", "pull_request_closed"},
		{GitHub, "ping", "ping"},
		{GitHub, "issues", "ping"},
		{GitHub, "create", "push_tag_annotated"},
		{Gitea, "push", "push_branch_deleted"},
		{Gitea, "pull_request", "pull_request_closed"},
		{Gitea, "create", "push_tag"},
		{GitLab, "Push Hook", "push_deleted"},
		{GitLab, "Merge Request Hook", "merge_request_update_title"},
		{GitLab, "Merge Request Hook", "merge_request_merge"},
		{GitLab, "Note Hook", "push"},
	}
	for _, c := range ignored {
		t.Run(string(c.kind)+" ignores "+c.event+" "+c.name, func(t *testing.T) {
			_, err := ParseHook(deliver(c.kind, c.event, fixture(t, c.kind, c.name), testSecret), c.kind, testSecret)
			if !errors.Is(err, ErrIgnored) {
				t.Errorf("err = %v, want ErrIgnored", err)
			}
		})
	}
	t.Run("gitlab system hook is read by object_kind", func(t *testing.T) {
		h := mustParse(t, GitLab, "System Hook", "push")
		if h.Event != EventPush || h.Branch != "main" {
			t.Errorf("event, branch = %q %q", h.Event, h.Branch)
		}
	})
	t.Run("delivery id is kept", func(t *testing.T) {
		if h := mustParse(t, GitHub, "push", "push"); h.Delivery != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
			t.Errorf("Delivery = %q", h.Delivery)
		}
		if h := mustParse(t, GitLab, "Push Hook", "push"); h.Delivery != "13792a34-cac6-4fda-95a8-c58e00a3954e" {
			t.Errorf("Delivery = %q", h.Delivery)
		}
	})
}

func TestParseHookSignature(t *testing.T) {
	body := func(kind Kind) []byte {
		if kind == GitLab {
			return fixture(t, GitLab, "push")
		}
		return fixture(t, kind, "push")
	}
	event := map[Kind]string{GitHub: "push", Gitea: "push", GitLab: "Push Hook"}
	cases := []struct {
		name   string
		kind   Kind
		secret string // configured on the ferry side
		tamper func(r *http.Request)
		ok     bool
	}{
		{"github valid", GitHub, testSecret, nil, true},
		{"github missing header", GitHub, testSecret, func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") }, false},
		{"github wrong secret", GitHub, "another secret", nil, false},
		{"github sha1 only", GitHub, testSecret, func(r *http.Request) {
			r.Header.Set("X-Hub-Signature-256", strings.Replace(r.Header.Get("X-Hub-Signature-256"), "sha256=", "sha1=", 1))
		}, false},
		{"github bare hex without prefix", GitHub, testSecret, func(r *http.Request) {
			r.Header.Set("X-Hub-Signature-256", strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="))
		}, false},
		{"github not hex", GitHub, testSecret, func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "sha256=zz") }, false},
		{"github no secret configured", GitHub, "", nil, false},
		{"gitea valid", Gitea, testSecret, nil, true},
		{"gitea X-Gitea-Signature only", Gitea, testSecret, func(r *http.Request) {
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Del("X-Gogs-Signature")
		}, true},
		{"gitea X-Hub-Signature-256 only", Gitea, testSecret, func(r *http.Request) {
			r.Header.Del("X-Gitea-Signature")
			r.Header.Del("X-Gogs-Signature")
		}, true},
		{"gitea bad X-Gitea-Signature is not rescued by a good hub signature", Gitea, testSecret, func(r *http.Request) {
			r.Header.Set("X-Gitea-Signature", hmacHex([]byte("other"), testSecret))
		}, false},
		{"gitea no signature", Gitea, testSecret, func(r *http.Request) {
			for _, h := range []string{"X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature-256", "X-Hub-Signature"} {
				r.Header.Del(h)
			}
		}, false},
		{"gitea wrong secret", Gitea, "another secret", nil, false},
		{"gitea no secret configured", Gitea, "", nil, false},
		{"gitlab valid", GitLab, testSecret, nil, true},
		{"gitlab missing token", GitLab, testSecret, func(r *http.Request) { r.Header.Del("X-Gitlab-Token") }, false},
		{"gitlab wrong token", GitLab, testSecret, func(r *http.Request) { r.Header.Set("X-Gitlab-Token", "It's a Secret to Everybodx") }, false},
		{"gitlab token prefix", GitLab, testSecret, func(r *http.Request) { r.Header.Set("X-Gitlab-Token", testSecret[:5]) }, false},
		{"gitlab no secret configured", GitLab, "", func(r *http.Request) { r.Header.Set("X-Gitlab-Token", "") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := deliver(c.kind, event[c.kind], body(c.kind), testSecret)
			if c.tamper != nil {
				c.tamper(r)
			}
			hook, err := ParseHook(r, c.kind, c.secret)
			if c.ok {
				if err != nil || hook == nil {
					t.Fatalf("ParseHook: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSignature) || hook != nil {
				t.Fatalf("ParseHook = %v, %v; want ErrSignature", hook, err)
			}
		})
	}
	t.Run("a body changed after signing is refused", func(t *testing.T) {
		for _, kind := range []Kind{GitHub, Gitea} {
			b := body(kind)
			r := deliver(kind, "push", b, testSecret)
			tampered := bytes.Replace(b, []byte(`"refs/heads/`), []byte(`"refs/heads/x`), 1)
			r.Body = io.NopCloser(bytes.NewReader(tampered))
			r.ContentLength = int64(len(tampered))
			if _, err := ParseHook(r, kind, testSecret); !errors.Is(err, ErrSignature) {
				t.Errorf("%s: err = %v, want ErrSignature", kind, err)
			}
		}
	})
	t.Run("the signature is checked before the payload is parsed", func(t *testing.T) {
		for _, kind := range []Kind{GitHub, Gitea, GitLab} {
			r := deliver(kind, event[kind], []byte(`{"ref": `), "wrong")
			if _, err := ParseHook(r, kind, testSecret); !errors.Is(err, ErrSignature) {
				t.Errorf("%s: err = %v, want ErrSignature for a badly signed, malformed body", kind, err)
			}
			r = deliver(kind, "issues", []byte(`{}`), "wrong")
			if _, err := ParseHook(r, kind, testSecret); !errors.Is(err, ErrSignature) {
				t.Errorf("%s: err = %v, want ErrSignature for a badly signed unknown event", kind, err)
			}
		}
	})
}

func TestParseHookPayloadErrors(t *testing.T) {
	cases := []struct {
		name  string
		kind  Kind
		event string
		body  string
		want  string // in the message
	}{
		{"truncated", GitHub, "push", `{"ref": "refs/heads/main", "after": "0d1a`, "truncated"},
		{"syntax", Gitea, "push", `{"ref": "refs/heads/main",, "after": "x"}`, "invalid JSON at byte 27"},
		{"wrong type", GitHub, "pull_request", `{"action": "opened", "number": "seven"}`, `field "number" is a JSON string, want int64`},
		{"no repository", GitHub, "push", `{"ref": "refs/heads/main", "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}`, `missing field "repository"`},
		{"no sha", Gitea, "push", `{"ref": "refs/heads/main", "repository": {"full_name": "a/b"}}`, `missing field "after"`},
		{"no object kind", GitLab, "Push Hook", `{"ref": "refs/heads/main"}`, `missing field "object_kind"`},
		{"empty", GitLab, "Push Hook", ``, "empty body"},
		{"no head sha", GitHub, "pull_request", `{"action": "opened", "number": 1, "repository": {"full_name": "a/b"}, "pull_request": {"base": {"ref": "main"}}}`, `missing field "pull_request.head.sha"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHook(deliver(c.kind, c.event, []byte(c.body), testSecret), c.kind, testSecret)
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PayloadError", err)
			}
			if errors.Is(err, ErrSignature) || errors.Is(err, ErrIgnored) {
				t.Fatalf("err = %v is also a signature or ignored error", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.event) {
				t.Errorf("err = %q, want it to name the event and contain %q", err, c.want)
			}
		})
	}
}

func TestParseHookTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte(" "), MaxPayloadSize+1)
	for _, knownLength := range []bool{true, false} {
		r := deliver(GitHub, "push", big, testSecret)
		if !knownLength {
			r.ContentLength = -1 // chunked
		}
		_, err := ParseHook(r, GitHub, testSecret)
		var pe *PayloadError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) {
			t.Errorf("known length %v: err = %v, want ErrTooLarge in a *PayloadError", knownLength, err)
		}
	}
	// The limit itself is accepted.
	atLimit := append(fixture(t, GitHub, "push"), bytes.Repeat([]byte(" "), MaxPayloadSize)...)[:MaxPayloadSize]
	atLimit[len(atLimit)-1] = '\n'
	if _, err := ParseHook(deliver(GitHub, "push", atLimit, testSecret), GitHub, testSecret); err != nil {
		t.Errorf("a body of exactly MaxPayloadSize: %v", err)
	}
}

func TestParseHookFormEncoded(t *testing.T) {
	// GitHub and Gitea can post the payload form-encoded; the signature
	// covers the form body.
	for _, kind := range []Kind{GitHub, Gitea} {
		form := []byte(url.Values{"payload": {string(fixture(t, kind, "push"))}}.Encode())
		r := deliver(kind, "push", form, testSecret)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h, err := ParseHook(r, kind, testSecret)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		want := mustParse(t, kind, "push", "push")
		if !reflect.DeepEqual(h, want) {
			t.Errorf("%s: form-encoded hook %+v differs from JSON one %+v", kind, h, want)
		}
	}
}

func TestDetect(t *testing.T) {
	body := []byte(`{}`)
	for _, c := range []struct {
		r    *http.Request
		want Kind
	}{
		{deliver(GitHub, "push", body, testSecret), GitHub},
		{deliver(Gitea, "push", body, testSecret), Gitea}, // also carries X-GitHub-Event
		{deliver(GitLab, "Push Hook", body, testSecret), GitLab},
		{httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body)), ""},
	} {
		if got := Detect(c.r); got != c.want {
			t.Errorf("Detect = %q, want %q", got, c.want)
		}
	}
	if _, err := ParseHook(deliver(GitHub, "push", body, testSecret), "bitbucket", testSecret); err == nil {
		t.Error("ParseHook accepted an unknown forge")
	}
}

func TestSign(t *testing.T) {
	body := fixture(t, GitHub, "push")
	if got, want := Sign(body, testSecret), hmacHex(body, testSecret); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestParseHookLimitPerForge(t *testing.T) {
	for kind, limit := range map[Kind]int64{GitHub: 25 << 20, GitLab: 25 << 20, Gitea: 10 << 20} {
		if got := MaxPayload(kind); got != limit {
			t.Errorf("MaxPayload(%s) = %d, want %d", kind, got, limit)
		}
	}
	// Gitea's limit is lower: a body over it is refused by its length
	// alone, before a byte is read.
	big := &countingReader{r: bytes.NewReader(make([]byte, MaxGiteaPayload+1))}
	r := deliver(Gitea, "push", nil, testSecret)
	r.Body, r.ContentLength = io.NopCloser(big), MaxGiteaPayload+1
	if _, err := ParseHook(r, Gitea, testSecret); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if big.n != 0 {
		t.Errorf("%d bytes of an oversized body were read before it was refused", big.n)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestParseHookRefusesBeforeReading checks that what the headers prove
// wrong is refused without reading the body: a missing or malformed
// signature header, and GitLab's wrong token.
func TestParseHookRefusesBeforeReading(t *testing.T) {
	event := map[Kind]string{GitHub: "push", Gitea: "push", GitLab: "Push Hook"}
	cases := []struct {
		name   string
		kind   Kind
		tamper func(h http.Header)
	}{
		{"github unsigned", GitHub, func(h http.Header) { h.Del("X-Hub-Signature-256") }},
		{"github short signature", GitHub, func(h http.Header) { h.Set("X-Hub-Signature-256", "sha256=abcd") }},
		{"gitea unsigned", Gitea, func(h http.Header) {
			for _, n := range []string{"X-Gitea-Signature", "X-Gogs-Signature", "X-Hub-Signature-256"} {
				h.Del(n)
			}
		}},
		{"gitlab wrong token", GitLab, func(h http.Header) { h.Set("X-Gitlab-Token", "guess") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := fixture(t, c.kind, "push")
			cr := &countingReader{r: bytes.NewReader(body)}
			r := deliver(c.kind, event[c.kind], body, testSecret)
			r.Body = io.NopCloser(cr)
			c.tamper(r.Header)
			if _, err := ParseHook(r, c.kind, testSecret); !errors.Is(err, ErrSignature) {
				t.Fatalf("err = %v, want ErrSignature", err)
			}
			if cr.n != 0 {
				t.Errorf("%d bytes of the body were read before the request was refused", cr.n)
			}
		})
	}
}

// TestParseHookSpooled parses a signed body larger than what is kept in
// memory, so it goes through the temporary file, form-encoded.
func TestParseHookSpooled(t *testing.T) {
	payload := fixture(t, GitHub, "push")
	payload = append(payload[:len(payload)-1:len(payload)-1], bytes.Repeat([]byte(" "), 3*spoolMemory)...)
	payload = append(payload, '\n')
	form := []byte(url.Values{"payload": {string(payload)}}.Encode())
	r := deliver(GitHub, "push", form, testSecret)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.ContentLength = -1
	h, err := ParseHook(r, GitHub, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustParse(t, GitHub, "push", "push"); !reflect.DeepEqual(h, want) {
		t.Errorf("spooled hook %+v differs from the small one %+v", h, want)
	}
}
