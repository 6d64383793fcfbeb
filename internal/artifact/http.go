package artifact

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func init() {
	Register(func(o Options) (Store, error) {
		hc := o.HTTP
		if hc == nil {
			hc = &http.Client{Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				ResponseHeaderTimeout: time.Minute,
				IdleConnTimeout:       90 * time.Second,
			}}
		}
		return httpStore{hc: hc}, nil
	}, "http", "https")
}

// httpStore reads with GET (resuming with a Range request) and writes with
// PUT, as WebDAV servers and artifact repositories accept.
type httpStore struct{ hc *http.Client }

var _ Store = httpStore{}

func (s httpStore) Open(ctx context.Context, u *url.URL, offset int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		res.Body.Close()
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), ErrNotFound)
	case offset > 0 && res.StatusCode == http.StatusPartialContent:
		if start, ok := rangeStart(res.Header.Get("Content-Range")); !ok || start != offset {
			res.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", u.Redacted(), offset, res.Header.Get("Content-Range"))
		}
		return res.Body, nil
	case res.StatusCode == http.StatusOK:
		if offset > 0 {
			// The server ignores ranges: skip what we already have.
			if _, err := io.CopyN(io.Discard, res.Body, offset); err != nil {
				res.Body.Close()
				return nil, fmt.Errorf("GET %s: skipping %d bytes: %w", u.Redacted(), offset, err)
			}
		}
		return res.Body, nil
	case res.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		res.Body.Close()
		return nil, fmt.Errorf("GET %s: the server has fewer than the %d bytes already downloaded (the artifact changed)", u.Redacted(), offset)
	default:
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", u.Redacted(), res.Status, strings.TrimSpace(string(msg)))
	}
}

// rangeStart reads the first byte position of "bytes START-END/SIZE".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

func (s httpStore) Put(ctx context.Context, u *url.URL, r io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), r)
	if err != nil {
		return err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("PUT %s: %s: %s", u.Redacted(), res.Status, strings.TrimSpace(string(msg)))
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}
