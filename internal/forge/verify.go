package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
)

// verifier checks a webhook's signature. Everything that can be checked
// from the headers alone is checked by newVerifier, before the body is
// read; the body is then written to the verifier as it streams in, and
// check says whether it matches.
type verifier struct {
	// mac computes the HMAC of the body; nil when the signature does not
	// depend on the body (GitLab's token).
	mac hash.Hash
	// want is the HMAC the request claims.
	want []byte
	// header names the header want came from, for messages.
	header string
}

// Write adds body bytes to the HMAC.
func (v *verifier) Write(p []byte) (int, error) {
	if v.mac == nil {
		return len(p), nil
	}
	return v.mac.Write(p)
}

// check reports whether the body written so far matches the signature.
// The comparison is constant-time.
func (v *verifier) check() error {
	if v.mac == nil {
		return nil
	}
	if !hmac.Equal(v.want, v.mac.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body", ErrSignature, v.header)
	}
	return nil
}

var _ io.Writer = (*verifier)(nil)

// newVerifier checks what the headers alone can prove, the way forge kind
// signs its webhooks, and returns a verifier for the body. It fails with
// ErrSignature, before a byte of the body is read, when no secret is
// configured, when the signature header is missing or malformed, and when
// GitLab's token is wrong.
func newVerifier(kind Kind, h http.Header, secret string) (*verifier, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	switch kind {
	case GitHub:
		return hubSignature(h, secret)
	case Gitea:
		// Gitea signs with a bare hex HMAC in X-Gitea-Signature (and the
		// same value in X-Gogs-Signature); since 1.14 it also sends
		// GitHub's X-Hub-Signature-256. The first header present decides:
		// a wrong one is not rescued by another.
		for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"} {
			if sig := h.Get(name); sig != "" {
				return hmacVerifier(name, sig, secret)
			}
		}
		return hubSignature(h, secret)
	case GitLab:
		// GitLab sends the secret itself, so it is checked before the
		// body is read. Comparing digests keeps the comparison
		// constant-time whatever the lengths.
		token := h.Get("X-Gitlab-Token")
		if token == "" {
			return nil, fmt.Errorf("%w: missing X-Gitlab-Token header", ErrSignature)
		}
		got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return nil, fmt.Errorf("%w: X-Gitlab-Token does not match", ErrSignature)
		}
		return &verifier{}, nil
	}
	return nil, fmt.Errorf("%w: unknown forge %q", ErrSignature, kind)
}

// hubSignature reads X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the body.
func hubSignature(h http.Header, secret string) (*verifier, error) {
	const name = "X-Hub-Signature-256"
	sig := h.Get(name)
	if sig == "" {
		return nil, fmt.Errorf("%w: missing %s header", ErrSignature, name)
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return nil, fmt.Errorf(`%w: %s does not start with "sha256="`, ErrSignature, name)
	}
	return hmacVerifier(name, hexSig, secret)
}

// hmacVerifier returns a verifier for the hex HMAC-SHA256 hexSig found in
// header name.
func hmacVerifier(name, hexSig, secret string) (*verifier, error) {
	want, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: %s is not a hex HMAC-SHA256", ErrSignature, name)
	}
	return &verifier{mac: hmac.New(sha256.New, []byte(secret)), want: want, header: name}, nil
}

// Sign returns the hex HMAC-SHA256 of body under secret: the value of
// Gitea's X-Gitea-Signature, and of GitHub's X-Hub-Signature-256 after its
// "sha256=" prefix. It is for tests and tools that send webhooks to ferry.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
