package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/artifact"
	_ "github.com/ferryci/ferry/internal/artifact/s3"
	"github.com/ferryci/ferry/internal/artifact/s3/s3test"
)

func TestS3PushFetchAndResumeAgainstVersitygw(t *testing.T) {
	opts := s3test.Start(t)
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
