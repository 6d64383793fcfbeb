package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/artifact"
)

// startVersity starts a real S3 server, versitygw with its posix backend,
// built into ./bin by scripts/test-deps.sh, and returns store options for
// it with a bucket "releases" created.
func startVersity(t *testing.T) artifact.Options {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		msg := "versitygw is not built (run scripts/test-deps.sh): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
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
		err = CreateBucket(ctx, opts, "releases")
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

func repoRoot(t *testing.T) string {
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

func TestS3PushFetchAndResumeAgainstVersitygw(t *testing.T) {
	opts := startVersity(t)
	ctx := context.Background()
	body := bytes.Repeat([]byte("ferry release "), 200_000) // 2.8 MB
	src := filepath.Join(t.TempDir(), "app.tar.gz")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := artifact.Push(ctx, src, "s3://releases/app/", opts, true)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(body)
	want := hex.EncodeToString(h[:])
	if res.URL != "s3://releases/app/app.tar.gz" || res.SHA256 != want {
		t.Fatalf("pushed %+v, want s3://releases/app/app.tar.gz with sha256 %s", res, want)
	}
	u, s, err := artifact.Parse(res.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := artifact.ReadChecksum(ctx, s, artifact.ChecksumURL(u)); err != nil || got != want {
		t.Fatalf("sidecar checksum %q, %v", got, err)
	}
	// A partial download from an earlier attempt resumes with a ranged GET.
	partial := filepath.Join(t.TempDir(), "p")
	if err := os.WriteFile(partial, body[:1_000_000], 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := artifact.Fetch(ctx, s, u, want, partial, &out, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("fetched %d bytes, want the %d of the artifact", out.Len(), len(body))
	}
	missing := *u
	missing.Path = "/app/nope.tar.gz"
	if _, err := s.Open(ctx, &missing, 0); !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("opening a missing object: %v, want ErrNotFound", err)
	}
	bad := opts
	bad.S3.SecretKey = "wrong"
	_, s2, _ := artifact.Parse(res.URL, bad)
	if _, err := s2.Open(ctx, u, 0); err == nil || errors.Is(err, artifact.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "s3://releases/app/app.tar.gz: SignatureDoesNotMatch") {
		t.Fatalf("a wrong secret key: %v, want a signature error naming the URL", err)
	}
}
