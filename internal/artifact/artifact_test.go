package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// cutServer serves body; its first GET breaks the connection after cut
// bytes. It records the Range header of every request.
type cutServer struct {
	body   []byte
	cut    int
	mu     sync.Mutex
	ranges []string
}

func (c *cutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.ranges = append(c.ranges, r.Header.Get("Range"))
	first := len(c.ranges) == 1
	c.mu.Unlock()
	if first {
		w.Header().Set("Content-Length", strconv.Itoa(len(c.body)))
		_, _ = w.Write(c.body[:c.cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	http.ServeContent(w, r, "a", fixedTime, bytes.NewReader(c.body))
}

func TestFetchResumesWithRangeAfterABrokenConnection(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 100_000)
	cs := &cutServer{body: body, cut: 700_000}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	u, s, err := Parse(srv.URL+"/a.tar.gz", Options{})
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(t.TempDir(), "x.partial")
	var out bytes.Buffer
	if err := Fetch(context.Background(), s, u, sum(body), partial, &out, 2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("got %d bytes, want the %d of the artifact exactly once", out.Len(), len(body))
	}
	if len(cs.ranges) != 2 || cs.ranges[0] != "" || cs.ranges[1] != "bytes=700000-" {
		t.Fatalf("requests' Range headers = %q, want none then bytes=700000-", cs.ranges)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("partial file left after a verified download: %v", err)
	}
}

func TestFetchResumesFromAPartialFileOfAnEarlierProcess(t *testing.T) {
	body := []byte(strings.Repeat("artifact ", 10_000))
	cs := &cutServer{body: body}
	cs.ranges = []string{"(not cut)"}
	srv := httptest.NewServer(cs)
	defer srv.Close()
	partial := filepath.Join(t.TempDir(), "x.partial")
	if err := os.WriteFile(partial, body[:1234], 0o600); err != nil {
		t.Fatal(err)
	}
	u, s, _ := Parse(srv.URL+"/a", Options{})
	var out bytes.Buffer
	if err := Fetch(context.Background(), s, u, sum(body), partial, &out, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), body) || cs.ranges[1] != "bytes=1234-" {
		t.Fatalf("got %d bytes with Range %q; want all %d with bytes=1234-", out.Len(), cs.ranges[1], len(body))
	}
}

func TestFetchRefusesAChecksumMismatchAndDropsThePartialFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(p, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, s, err := Parse(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "x.partial")
	want := sum([]byte("original"))
	err = Fetch(context.Background(), s, u, want, partial, &bytes.Buffer{}, 0)
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Want != want || ce.Got != sum([]byte("tampered")) {
		t.Fatalf("err = %v, want a ChecksumError", err)
	}
	if !strings.Contains(err.Error(), "sha256 mismatch for file://"+p) {
		t.Fatalf("error %q does not name the URL", err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatal("the partial file of a refused download is kept")
	}
}

func TestPushWritesTheArtifactThenItsChecksum(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app-1.tar.gz")
	if err := os.WriteFile(src, []byte("release one"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), src, "file://"+dir+"/store/", Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.URL != "file://"+dir+"/store/app-1.tar.gz" || res.SHA256 != sum([]byte("release one")) || res.Size != 11 {
		t.Fatalf("pushed %+v", res)
	}
	u, s, _ := Parse(res.URL, Options{})
	got, err := ReadChecksum(context.Background(), s, ChecksumURL(u))
	if err != nil || got != res.SHA256 {
		t.Fatalf("sidecar = %q, %v; want %s", got, err, res.SHA256)
	}
}

func TestParseNamesTheKnownSchemes(t *testing.T) {
	_, _, err := Parse("ftp://x/y", Options{})
	if err == nil || !strings.Contains(err.Error(), `scheme "ftp" is not one of file, http, https`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPushOverHTTPPutThenFetch(t *testing.T) {
	var mu sync.Mutex
	objects := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			objects[r.URL.Path] = b
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			b, ok := objects[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, "", fixedTime, bytes.NewReader(b))
		}
	}))
	defer srv.Close()
	src := filepath.Join(t.TempDir(), "app.tgz")
	if err := os.WriteFile(src, []byte("over http"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), src, srv.URL+"/dav/", Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	u, s, _ := Parse(res.URL, Options{})
	var out bytes.Buffer
	if err := Fetch(context.Background(), s, u, res.SHA256, filepath.Join(t.TempDir(), "p"), &out, 0); err != nil || out.String() != "over http" {
		t.Fatalf("fetched %q, %v", out.String(), err)
	}
	if got, err := ReadChecksum(context.Background(), s, ChecksumURL(u)); err != nil || got != res.SHA256 {
		t.Fatalf("checksum %q %v", got, err)
	}
	missing, _, _ := Parse(srv.URL+"/dav/nope", Options{})
	if _, err := s.Open(context.Background(), missing, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing object: %v", err)
	}
}

// stallServer sends the first half of body, then sends nothing more until
// the client gives up; later requests are served whole (with ranges).
type stallServer struct {
	body   []byte
	mu     sync.Mutex
	ranges []string
}

func (c *stallServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.ranges = append(c.ranges, r.Header.Get("Range"))
	first := len(c.ranges) == 1
	c.mu.Unlock()
	if first {
		w.Header().Set("Content-Length", strconv.Itoa(len(c.body)))
		_, _ = w.Write(c.body[:len(c.body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	http.ServeContent(w, r, "a", fixedTime, bytes.NewReader(c.body))
}

func TestFetchAbandonsAStalledAttemptAndResumes(t *testing.T) {
	old := IdleTimeout
	IdleTimeout = 200 * time.Millisecond
	defer func() { IdleTimeout = old }()
	body := bytes.Repeat([]byte("stall "), 50_000)
	ss := &stallServer{body: body}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	u, s, _ := Parse(srv.URL+"/a", Options{})
	var out bytes.Buffer
	if err := Fetch(context.Background(), s, u, sum(body), filepath.Join(t.TempDir(), "p"), &out, 1); err != nil {
		t.Fatal(err)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !bytes.Equal(out.Bytes(), body) || len(ss.ranges) != 2 || ss.ranges[1] != "bytes="+strconv.Itoa(len(body)/2)+"-" {
		t.Fatalf("got %d bytes, ranges %q", out.Len(), ss.ranges)
	}
}
