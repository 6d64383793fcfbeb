package forge

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// The largest webhook body ParseHook reads from each forge, from the
// forges' documented limits:
//
//   - GitHub caps payloads at 25 MB ("Payloads are capped at 25 MB" in
//     GitHub's webhook documentation); a push with more data is not sent.
//   - GitLab refuses to send a payload larger than 25 MB (GitLab merge
//     request 38687, "Limit webhook payload size to 25MB").
//   - Gitea documents no limit; 10 MiB is far above what its push and
//     pull request payloads carry.
//
// The binary units leave a small margin over the decimal ones.
const (
	MaxGitHubPayload = 25 << 20
	MaxGitLabPayload = 25 << 20
	MaxGiteaPayload  = 10 << 20
)

// MaxPayloadSize is the largest webhook body ParseHook reads from any forge.
const MaxPayloadSize = MaxGitHubPayload

// MaxPayload returns the largest webhook body ParseHook reads from forge
// kind, or 0 for an unknown forge.
func MaxPayload(kind Kind) int64 {
	switch kind {
	case GitHub:
		return MaxGitHubPayload
	case GitLab:
		return MaxGitLabPayload
	case Gitea:
		return MaxGiteaPayload
	}
	return 0
}

// spoolMemory is how much of a body a spool keeps in memory; the rest goes
// to a temporary file, so that memory stays bounded whatever the size and
// number of bodies being read.
const spoolMemory = 64 << 10

// spool holds a request body: its first spoolMemory bytes in memory, the
// rest in an unlinked temporary file. It is not safe for concurrent use.
type spool struct {
	mem  []byte
	file *os.File
	size int64
}

// Write appends p to the body.
func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && len(s.mem)+len(p) <= spoolMemory {
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "ferry-hook-*")
		if err != nil {
			return 0, fmt.Errorf("spooling the body: %w", err)
		}
		// Unlinked at once: the file goes away with the descriptor,
		// even if the process dies.
		_ = os.Remove(f.Name())
		s.file = f
		if _, err := f.Write(s.mem); err != nil {
			return 0, fmt.Errorf("spooling the body: %w", err)
		}
		s.mem = nil
	}
	n, err := s.file.Write(p)
	s.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("spooling the body: %w", err)
	}
	return n, nil
}

// Bytes returns the whole body. Call it only after the body is verified:
// it brings a spooled body into memory.
func (s *spool) Bytes() ([]byte, error) {
	if s.file == nil {
		return s.mem, nil
	}
	data := make([]byte, s.size)
	if _, err := s.file.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the spooled body: %w", err)
	}
	return data, nil
}

// Close releases the temporary file, if any.
func (s *spool) Close() {
	if s.file != nil {
		_ = s.file.Close()
		s.file = nil
	}
	s.mem = nil
}

// readBody streams the body into a spool and into mac (which computes the
// signature on the way), refusing a body larger than limit: by its
// Content-Length before reading anything, or once limit bytes have been
// read. The caller closes the spool.
func readBody(r *http.Request, limit int64, mac io.Writer) (*spool, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, r.ContentLength, limit)
	}
	if r.Body == nil {
		return nil, errors.New("empty body")
	}
	s := &spool{}
	n, err := io.Copy(io.MultiWriter(s, mac), io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		s.Close()
		return nil, fmt.Errorf("reading body: %w", err)
	case n > limit:
		s.Close()
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return s, nil
}
