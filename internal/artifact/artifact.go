// Package artifact reads and writes release artifacts in stores addressed
// by URL: file:///path, http(s)://… and, when internal/artifact/s3 is
// linked in, s3://bucket/key. A store is one small interface registered by
// URL scheme, so a new kind of store is one file and one Register call.
//
// Fetch downloads resumably: the bytes received so far are kept in a
// partial file, and a later call (after a network error, or a restart of
// the process) continues from there instead of starting over.
package artifact

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("artifact not found")

// Store reads and writes objects of one URL scheme. Implementations are
// safe for concurrent use; every call is independent.
type Store interface {
	// Open reads the object at u from byte offset on (0: the whole
	// object). The caller closes the reader. A missing object is
	// ErrNotFound.
	Open(ctx context.Context, u *url.URL, offset int64) (io.ReadCloser, error)
	// Put writes the object at u with the content of r, size bytes long
	// (-1 when unknown), replacing any object there.
	Put(ctx context.Context, u *url.URL, r io.Reader, size int64) error
}

// Options configure the stores; each store reads the fields it needs.
type Options struct {
	// HTTP is the client of the http store (nil: a default client).
	HTTP *http.Client
	// S3 configures the s3 store.
	S3 S3Options
}

// S3Options configure the S3-compatible store.
type S3Options struct {
	// Endpoint is host[:port] of the S3 API (default s3.amazonaws.com).
	Endpoint string
	// Region of the buckets (default us-east-1).
	Region string
	// AccessKey and SecretKey sign requests; both empty means anonymous.
	AccessKey, SecretKey string
	// Insecure selects plain http instead of https.
	Insecure bool
}

// NewFunc creates a store from the options.
type NewFunc func(Options) (Store, error)

var (
	mu       sync.RWMutex
	registry = map[string]NewFunc{}
)

// Register makes the store created by f serve URLs of the given schemes.
// It panics when a scheme is registered twice; call it from init.
func Register(f NewFunc, schemes ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range schemes {
		if _, dup := registry[s]; dup {
			panic("artifact: scheme registered twice: " + s)
		}
		registry[s] = f
	}
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Parse parses an artifact URL and returns it with the store that serves
// it. A path without a scheme is a file path.
func Parse(raw string, opts Options) (*url.URL, Store, error) {
	if strings.HasPrefix(raw, "/") {
		raw = "file://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("artifact url %q: %w", raw, err)
	}
	mu.RLock()
	f := registry[u.Scheme]
	mu.RUnlock()
	if f == nil {
		return nil, nil, fmt.Errorf("artifact url %q: scheme %q is not one of %s", raw, u.Scheme, strings.Join(Schemes(), ", "))
	}
	s, err := f(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("artifact url %q: %w", raw, err)
	}
	return u, s, nil
}

// ChecksumURL is where a checksum sidecar of the artifact at u lives: the
// same URL with ".sha256" appended to its path.
func ChecksumURL(u *url.URL) *url.URL {
	c := *u
	c.Path += ".sha256"
	c.RawPath = ""
	return &c
}

// ReadChecksum reads a sha256 sidecar: its first word, 64 hex digits (the
// format of sha256sum's output, so "HASH  file" works too).
func ReadChecksum(ctx context.Context, s Store, u *url.URL) (string, error) {
	r, err := s.Open(ctx, u, 0)
	if err != nil {
		return "", err
	}
	defer r.Close()
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %w", Redact(u), err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || !isSHA256(f[0]) {
		return "", fmt.Errorf("checksum %s: want 64 lower-case hex digits first, got %q", Redact(u), strings.TrimSpace(line))
	}
	return f[0], nil
}

// Redact returns u as a string without its password.
func Redact(u *url.URL) string { return u.Redacted() }

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ChecksumError is a download whose sha256 differs from the expected one.
type ChecksumError struct {
	URL       string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: want %s, got %s (the artifact was changed or corrupted; refusing it)", e.URL, e.Want, e.Got)
}

// Fetch downloads the object at u into w, resuming from partial: a file
// holding the first bytes of a previous attempt (created when missing). The
// partial file's bytes are replayed into w first, then the rest is fetched
// from the store with up to retries further attempts after a read error,
// each continuing where the last one stopped. When the whole object has
// been read its sha256 is compared with want: on a match the partial file
// is removed and nil returned; on a mismatch it is removed too and a
// *ChecksumError returned. On any other error the partial file stays for
// the next call.
//
// w sees every byte exactly once and in order. Nothing read may be trusted
// before Fetch returns nil.
func Fetch(ctx context.Context, s Store, u *url.URL, want, partial string, w io.Writer, retries int) error {
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening partial download: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(io.MultiWriter(h, w), f)
	if err != nil {
		return fmt.Errorf("replaying partial download %s: %w", partial, err)
	}
	// Appends go to the end, where the replay left the offset.
	out := io.MultiWriter(f, h, w)
	for attempt := 0; ; attempt++ {
		n, err := fetchFrom(ctx, s, u, have, out)
		have += n
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, ErrNotFound) || attempt >= retries || errors.Is(err, errWrite) {
			return fmt.Errorf("downloading %s (%d bytes so far): %w", Redact(u), have, err)
		}
		if n == 0 { // no progress: wait before the next attempt (0.5 s, 1 s, 2 s, …)
			t := time.NewTimer(min(time.Duration(500<<attempt)*time.Millisecond, 10*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("downloading %s (%d bytes so far): %w", Redact(u), have, context.Cause(ctx))
			case <-t.C:
			}
		}
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		_ = os.Remove(partial)
		return &ChecksumError{URL: Redact(u), Want: want, Got: got}
	}
	return os.Remove(partial)
}

// IdleTimeout is how long a download may go without receiving a byte
// before the attempt is abandoned and the next one resumes where it
// stopped. Time spent waiting for w (an unpacker) does not count.
var IdleTimeout = time.Minute

// errIdle ends an attempt that received nothing for IdleTimeout.
var errIdle = errors.New("no data received within the idle timeout")

// errWrite marks a failure of the destination, which a retry cannot fix.
var errWrite = errors.New("writing download")

func fetchFrom(ctx context.Context, s Store, u *url.URL, offset int64, out io.Writer) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(IdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	r, err := s.Open(ctx, u, offset)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n int64
	buf := make([]byte, 64<<10)
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			idle.Stop()
			if _, werr := out.Write(buf[:m]); werr != nil {
				return n, fmt.Errorf("%w: %w", errWrite, werr)
			}
			n += int64(m)
			idle.Reset(IdleTimeout)
		}
		if rerr != nil && errors.Is(context.Cause(ctx), errIdle) {
			return n, errIdle
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
