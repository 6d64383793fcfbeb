package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ferryci/ferry/internal/server"
	"github.com/ferryci/ferry/internal/store"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBootstrap checks the first start: with no --admin-token the admin's
// token is printed once and works; a second start prints nothing.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()

	srv, err := server.Open(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`ferry: admin token \(shown once\): (ferry_[A-Za-z0-9_-]+)`).FindStringSubmatch(logs.String())
	if m == nil {
		srv.Close()
		t.Fatalf("no admin token in the log:\n%s", logs.String())
	}
	tok, err := srv.Store().Tokens.FindByHash(ctx, store.HashToken(m[1]))
	if err != nil {
		srv.Close()
		t.Fatalf("the printed token is not stored: %v", err)
	}
	u, err := srv.Store().Users.Get(ctx, tok.UserID)
	if err != nil || !u.Admin || u.Login != "admin" {
		t.Errorf("the token belongs to %+v (%v), want the admin user", u, err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	// The generated secret key is private and kept.
	keyPath := filepath.Join(dir, "secret.key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("no generated key: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret.key has mode %v, want 0600", fi.Mode().Perm())
	}
	key1, _ := os.ReadFile(keyPath)
	if !strings.Contains(logs.String(), "generated a new secret key") {
		t.Error("the log does not say a key was generated")
	}

	logs = syncBuffer{}
	srv, err = server.Open(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if strings.Contains(logs.String(), "admin token") || strings.Contains(logs.String(), "generated") {
		t.Errorf("a second start bootstrapped again:\n%s", logs.String())
	}
	if key2, _ := os.ReadFile(keyPath); !bytes.Equal(key1, key2) {
		t.Error("the secret key changed on the second start")
	}
}

// TestSecretKeyConfig checks the forms a configured key may take, and that
// a bad key or admin token stops the start with a message naming it.
func TestSecretKeyConfig(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xab}, 32)
	good := []string{
		strings.Repeat("ab", 32),
		base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
	}
	for _, key := range good {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.SecretKey = key
		srv, err := server.Open(context.Background(), cfg, nil)
		if err != nil {
			t.Errorf("key %q: %v", key, err)
			continue
		}
		srv.Close()
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "secret.key")); err == nil {
			t.Errorf("key %q: a key file was generated although a key was given", key)
		}
	}
	bad := []struct {
		edit func(*server.Config)
		want string
	}{
		{func(c *server.Config) { c.SecretKey = "abcd" }, "FERRY_SECRET_KEY"},
		{func(c *server.Config) { c.SecretKeyFile = "/nonexistent/key" }, "--secret-key-file"},
		{func(c *server.Config) { c.AdminToken = "short" }, "--admin-token"},
		{func(c *server.Config) { c.LeaseTTL = 0 }, "--lease-ttl"},
		{func(c *server.Config) { c.URL = "ftp://x" }, "--url"},
		{func(c *server.Config) { c.LogLevel = "loud" }, "--log-level"},
	}
	for _, tc := range bad {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		tc.edit(&cfg)
		srv, err := server.Open(context.Background(), cfg, nil)
		if err == nil {
			srv.Close()
			t.Errorf("want an error naming %s, got none", tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q does not name %s", err, tc.want)
		}
	}
}
