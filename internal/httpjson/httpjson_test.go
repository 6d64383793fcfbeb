package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var errRefused = errors.New("token refused")

// The server here answers each path with one status, to check how the
// client sends a request and turns each kind of answer into a result.
func TestDoSendsJSONAndMapsAnswers(t *testing.T) {
	type msg struct {
		N int `json:"n"`
	}
	var gotAuth, gotType, gotETag string
	var gotIn msg
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotType, gotETag = r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("If-None-Match")
		gotIn = msg{}
		if r.Method == http.MethodPost {
			if err := json.NewDecoder(r.Body).Decode(&gotIn); err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
		}
		switch r.URL.Path {
		case "/ok":
			_ = json.NewEncoder(w).Encode(msg{N: gotIn.N + 1})
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/same":
			w.WriteHeader(http.StatusNotModified)
		case "/refused":
			http.Error(w, "no", http.StatusForbidden)
		case "/busy":
			http.Error(w, "  try later \n", http.StatusServiceUnavailable)
		case "/junk":
			_, _ = w.Write([]byte("{"))
		default:
			http.Error(w, "nothing here", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL+"/", "tok", nil, map[int]error{http.StatusForbidden: errRefused})
	ctx := context.Background()

	var out msg
	ok, err := c.Do(ctx, Request{Method: http.MethodPost, Path: "/ok", In: msg{N: 41}, Out: &out})
	if !ok || err != nil || out.N != 42 || gotIn.N != 41 {
		t.Fatalf("POST /ok = %v, %v, out %+v, server got %+v", ok, err, out, gotIn)
	}
	if gotAuth != "Bearer tok" || gotType != "application/json" || gotETag != "" {
		t.Fatalf("POST headers: auth %q content-type %q if-none-match %q", gotAuth, gotType, gotETag)
	}
	ok, err = c.Do(ctx, Request{Method: http.MethodGet, Path: "/same?x=1", ETag: "7", Out: &out})
	if ok || err != nil || gotETag != `"7"` || gotType != "" {
		t.Fatalf("GET /same = %v, %v (if-none-match %q, content-type %q), want false, nil", ok, err, gotETag, gotType)
	}
	if ok, err = c.Do(ctx, Request{Method: http.MethodPost, Path: "/empty", In: msg{}}); ok || err != nil {
		t.Fatalf("POST /empty = %v, %v, want false, nil", ok, err)
	}
	if _, err = c.Do(ctx, Request{Method: http.MethodGet, Path: "/refused?a=b"}); !errors.Is(err, errRefused) || err.Error() != "/refused: token refused" {
		t.Fatalf("GET /refused: %v, want the sentinel named by the path", err)
	}
	_, err = c.Do(ctx, Request{Method: http.MethodGet, Path: "/busy", Name: "/b/{id}"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !se.Temporary() || err.Error() != "/b/{id}: server answered 503: try later" {
		t.Fatalf("GET /busy: %v, want a temporary 503 named /b/{id}", err)
	}
	if _, err = c.Do(ctx, Request{Method: http.MethodGet, Path: "/gone"}); !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Temporary() {
		t.Fatalf("GET /gone: %v, want a lasting 404", err)
	}
	if _, err = c.Do(ctx, Request{Method: http.MethodGet, Path: "/junk", Out: &out}); err == nil || !strings.HasPrefix(err.Error(), "decoding /junk answer: ") {
		t.Fatalf("GET /junk: %v, want a decoding error", err)
	}
}
