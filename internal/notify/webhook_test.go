package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
)

// compactJSON returns s without insignificant white space.
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("expected JSON does not parse: %v", err)
	}
	return b.String()
}

// TestWebhookPayloadAndSignature posts a build event to a local listener
// and checks the exact document, the headers, and that the signature
// verifies the way a receiver would check it (HMAC-SHA256 of the raw body).
func TestWebhookPayloadAndSignature(t *testing.T) {
	l := newListener(t, nil)
	tg := mustTarget(t, Config{Type: "webhook", URL: l.URL + "/hook", Secret: "s3cret",
		Headers: map[string]string{"Authorization": "Bearer tok"}})
	ev := buildEvent()
	if err := tg.n.Notify(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	r := l.requests()[0]
	want := compactJSON(t, `{
		"kind": "build", "action": "finished", "status": "failure", "time": "2026-12-02T10:00:00Z",
		"link": "https://ci.example.com/repos/acme/app/builds/42",
		"build": {"repo": "acme/app", "number": 42, "event": "push", "branch": "main", "ref": "refs/heads/main",
			"commit": "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", "message": "fix <the> bug & more",
			"author": "alice", "started": "2026-12-02T09:58:00Z", "finished": "2026-12-02T10:00:00Z"}}`)
	var got bytes.Buffer
	if err := json.Compact(&got, r.Body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
	}
	if got.String() != want {
		t.Errorf("body:\n got %s\nwant %s", got.String(), want)
	}
	if r.Method != http.MethodPost || r.Path != "/hook" {
		t.Errorf("request %s %s, want POST /hook", r.Method, r.Path)
	}
	for k, v := range map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer tok",
		"X-Ferry-Event": "build.finished", "User-Agent": userAgent,
	} {
		if g := r.Header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if r.Header.Get("X-Ferry-Delivery") == "" {
		t.Error("no X-Ferry-Delivery header")
	}
	// Verify as a receiver written from the documentation would.
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(r.Body)
	wantSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	sig := r.Header.Get("X-Ferry-Signature-256")
	if !hmac.Equal([]byte(sig), []byte(wantSig)) {
		t.Errorf("X-Ferry-Signature-256 = %q, want %q", sig, wantSig)
	}
	if !VerifySignature("s3cret", r.Body, sig) {
		t.Error("VerifySignature rejects the signature the webhook sent")
	}
	if VerifySignature("other", r.Body, sig) || VerifySignature("s3cret", append(r.Body, ' '), sig) {
		t.Error("VerifySignature accepts a wrong secret or a changed body")
	}
}

// TestWebhookWithoutSecret sends no signature header.
func TestWebhookWithoutSecret(t *testing.T) {
	l := newListener(t, nil)
	tg := mustTarget(t, Config{Type: "webhook", URL: l.URL})
	ev := deployEvent()
	if err := tg.n.Notify(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	r := l.requests()[0]
	if _, ok := r.Header["X-Ferry-Signature-256"]; ok {
		t.Error("a webhook without a secret sent a signature")
	}
	var got Event
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Deployment == nil || *got.Deployment != *deployEvent().Deployment || got.Name() != "deployment.rolled_back" {
		t.Errorf("decoded event %+v, deployment %+v", got, got.Deployment)
	}
}
