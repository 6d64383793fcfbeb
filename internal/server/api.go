package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
)

// access is what a route requires of the caller.
type access int

const (
	// accessPublic routes need no token: /healthz, and webhooks, which
	// authenticate by signature.
	accessPublic access = iota
	// accessUser routes need a personal token; repo routes check the
	// user's role on the repo themselves.
	accessUser
	// accessAdmin routes need an admin user's personal token.
	accessAdmin
	// accessAgent routes need an agent token.
	accessAgent
	// accessMetrics routes need an admin's token or the metrics token.
	accessMetrics
	// accessNode routes are the node protocol: they need a node token.
	accessNode
)

// route is one registered endpoint.
type route struct {
	method  string
	path    string
	access  access
	handler http.Handler
}

// handlerFunc is an API handler. A returned *apiError is sent as JSON with
// its status; store.ErrNotFound and store.ErrConflict become 404 and 409;
// anything else is logged and answered 500.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// apiError is an error answer: {"error": "...", "field": "..."}.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	// Field names the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, field, format string, args ...any) *apiError {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...), Field: field}
}

func badRequest(field, format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, field, format, args...)
}

func notFound(format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, "", format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return errorf(http.StatusForbidden, "", format, args...)
}

func conflict(field, format string, args ...any) *apiError {
	return errorf(http.StatusConflict, field, format, args...)
}

// serve adapts a handlerFunc to http.Handler.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = notFound("not found")
	case errors.Is(err, store.ErrConflict):
		ae = conflict("", "conflict: %v", err)
	case r.Context().Err() != nil:
		// The client went away; there is no one to answer.
		return
	case s.storeDown(r.Context()):
		// Not a bug to report: the database is away, and the request
		// may succeed when it is back.
		s.log.Warn("request failed: the store does not answer", "method", r.Method, "path", r.URL.Path, "err", err)
		s.storeFailed(time.Now())
		w.Header().Set("Retry-After", "5")
		ae = errorf(http.StatusServiceUnavailable, "", "the database is unavailable; try again later")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, "", "internal server error")
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	writeJSON(w, ae.Status, ae)
}

// storeDown reports whether the store fails to answer a trivial query
// within two seconds: after a request failed with an unexpected error, it
// tells a database outage (503) from a bug (500).
func (s *Server) storeDown(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, err := s.store.Users.Count(ctx)
	return err != nil
}

// writeJSON writes v as the JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// maxBodySize bounds API request bodies; agent log batches get more.
const (
	maxBodySize      = 1 << 20
	maxAgentBodySize = 16 << 20
)

// decodeBody decodes the JSON request body into v, rejecting unknown
// fields and trailing data. An empty body leaves v as it is when
// allowEmpty is set, and is an error otherwise.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64, allowEmpty bool) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "", "request body is larger than %d bytes", mbe.Limit)
		}
		return badRequest("", "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("", "request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("", "invalid JSON: unexpected data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "invalid JSON: unexpected data after the object")
	}
	return nil
}

// jsonError turns a decoding error into a 400 that names the problem.
func jsonError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &syn):
		return badRequest("", "invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("", "invalid JSON: expected a %s, got %s", typ.Type, typ.Value)
		}
		return badRequest(typ.Field, "field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "invalid JSON: unexpected end of the body")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return badRequest(name, "unknown field %s", f)
	}
	return badRequest("", "invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
}

// jsonKind names a Go type in JSON terms for error messages.
func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	}
	return "a " + goType
}

// duration is a time.Duration written in JSON as a Go duration string
// ("90s", "1h30m"). Requests carry durations as strings, parsed with
// parseDuration so that an error names its field.
type duration = api.Duration

// parseDuration parses the request field name, a Go duration string
// ("90s", "1h30m"); empty means zero.
func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, badRequest(field, "%s: invalid duration %q; use a form such as \"90s\" or \"1h30m\"", field, v)
	}
	if d < 0 {
		return 0, badRequest(field, "%s: duration %q must not be negative", field, v)
	}
	return d, nil
}

// pathInt parses the path value name as a positive integer.
func pathInt(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, badRequest(name, "%s %q must be a positive number", name, v)
	}
	return n, nil
}

// queryInt parses the query parameter name as a non-negative integer, or
// returns def when it is absent.
func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(name, "query parameter %s=%q must be a non-negative number", name, v)
	}
	return n, nil
}

// jsonErrorWriter rewrites the router's plain-text 404 and 405 answers as
// JSON errors.
type jsonErrorWriter struct {
	http.ResponseWriter
	swallow bool
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	msg := "no such endpoint"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed; allowed: " + w.Header().Get("Allow")
	}
	w.Header().Del("X-Content-Type-Options")
	writeJSON(w.ResponseWriter, code, &apiError{Message: msg})
	w.swallow = true
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
