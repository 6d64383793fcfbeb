package notify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// The webhook notifier POSTs each event as a JSON document (Event's JSON
// form) with these headers:
//
//	Content-Type: application/json
//	X-Ferry-Event: build.finished            (Event.Name)
//	X-Ferry-Delivery: 3f1c…                  (random, the same on every retry of one delivery)
//	X-Ferry-Signature-256: sha256=9a4b…      (only with a secret)
//
// plus the configured headers. With a secret, X-Ferry-Signature-256 is
// "sha256=" and the lowercase hex HMAC-SHA256 of the exact request body
// keyed with the secret, as GitHub's X-Hub-Signature-256. A receiver
// verifies it by computing the same HMAC over the raw body it received
// (before any JSON decoding) and comparing the two in constant time
// (Go: hmac.Equal; Python: hmac.compare_digest). VerifySignature does it.
const (
	HeaderEvent     = "X-Ferry-Event"
	HeaderDelivery  = "X-Ferry-Delivery"
	HeaderSignature = "X-Ferry-Signature-256"
)

func init() { Register("webhook", newWebhook) }

type webhook struct{ cfg *Config }

var _ Notifier = (*webhook)(nil)

func newWebhook(c *Config) (Notifier, error) {
	if err := c.accepts("secret"); err != nil {
		return nil, err
	}
	return &webhook{cfg: c}, nil
}

// Notify implements Notifier.
func (w *webhook) Notify(ctx context.Context, ev *Event) error {
	body, err := encodeJSON(ev)
	if err != nil {
		return err
	}
	h := w.cfg.header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderEvent, ev.Name())
	h.Set(HeaderDelivery, deliveryID(ctx))
	if w.cfg.Secret != "" {
		h.Set(HeaderSignature, Sign(w.cfg.Secret, body))
	}
	return post(ctx, w.cfg.URL, h, body)
}

// Sign returns the X-Ferry-Signature-256 value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header, an X-Ferry-Signature-256 value,
// is body's signature under secret, comparing in constant time.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

type deliveryKey struct{}

// withDelivery returns ctx carrying a delivery id, so that every attempt
// of one delivery sends the same X-Ferry-Delivery.
func withDelivery(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, deliveryKey{}, id)
}

// deliveryID returns ctx's delivery id, or a new one.
func deliveryID(ctx context.Context) string {
	if id, ok := ctx.Value(deliveryKey{}).(string); ok {
		return id
	}
	return newDeliveryID()
}

func newDeliveryID() string { return rand.Text() }
