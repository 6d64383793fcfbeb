package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// PermanentError is a delivery error that a retry cannot fix: the
// endpoint refused the request (a 4xx answer other than 408 and 429), or
// the request cannot be built. The Dispatcher does not retry it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as one that retrying cannot fix; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is a
// PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// StatusError is an endpoint's answer other than 2xx.
type StatusError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Body is the start of the answer's body, for the log.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

// encodeJSON encodes v as JSON without escaping <, > and & (the
// documents are not embedded in HTML), and without a final newline.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, Permanent(fmt.Errorf("encoding the document: %w", err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 512

// client sends every notification. It has no timeout of its own (each
// attempt's context has one) and never follows a redirect: a POST
// redirected becomes a GET, so a 3xx is reported as a permanent error
// naming the new location instead.
var client = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// userAgent is the User-Agent of every notification request.
const userAgent = "ferry-notify/1"

// post sends body to url with the given headers, and classifies the
// outcome: nil for 2xx; a permanent error for 3xx and for 4xx except 408
// and 429; a retryable error for the rest (5xx, 408, 429, network errors,
// timeouts).
func post(ctx context.Context, url string, header http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("building the request: %w", err))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := clientFrom(ctx).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	serr := &StatusError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(data))}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Permanent(fmt.Errorf("%w; redirected to %q: configure that URL instead", serr, resp.Header.Get("Location")))
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return serr
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return Permanent(serr)
	}
	return serr
}
