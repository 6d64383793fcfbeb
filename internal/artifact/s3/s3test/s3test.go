// Package s3test starts a real S3-compatible server for tests: versitygw
// with its posix backend, built into ./bin by scripts/test-deps.sh.
package s3test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/testnet"

	"github.com/ferryci/ferry/internal/artifact"
	"github.com/ferryci/ferry/internal/artifact/s3"
)

// Start starts a real S3 server, versitygw with its posix backend,
// built into ./bin by scripts/test-deps.sh, and returns store options for
// it with a bucket "releases" created.
func Start(t testing.TB) artifact.Options {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		msg := "versitygw is not built (run scripts/test-deps.sh): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	addr := testnet.FreeAddr(t)
	root := t.TempDir()
	cmd := exec.Command(bin, "--access", "ferrytest", "--secret", "ferrytestsecret", "--port", addr, "posix", root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	opts := artifact.Options{S3: artifact.S3Options{Endpoint: addr, AccessKey: "ferrytest", SecretKey: "ferrytestsecret", Insecure: true}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s3.CreateBucket(ctx, opts, "releases")
		cancel()
		if err == nil {
			return opts
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
