package nodeproto

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The server side here is a test implementation of the protocol's
// endpoints, to check the client's encoding and its handling of answers.
func TestClientSpeaksTheProtocol(t *testing.T) {
	var gotVersion, gotWait, gotIfNoneMatch, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case PathDesired:
			gotVersion, gotWait, gotIfNoneMatch = r.URL.Query().Get("version"), r.URL.Query().Get("wait"), r.Header.Get("If-None-Match")
			if gotVersion == "7" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_ = json.NewEncoder(w).Encode(DesiredState{Version: "7", Services: map[string]Release{"app": {ID: "r1",
				Artifact: &Artifact{URL: "s3://b/k", SHA256: strings.Repeat("a", 64)},
				Health:   &HealthCheck{Type: "http", URL: "http://x/", Interval: Duration(time.Second)}}}})
		case PathReport:
			var rep Report
			if err := json.NewDecoder(r.Body).Decode(&rep); err != nil || rep.Services[0].Duration != Duration(1500*time.Millisecond) {
				http.Error(w, "bad report", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL+"/", "tok", nil)
	ctx := context.Background()

	ds, err := c.Desired(ctx, "", 30*time.Second)
	if err != nil || ds.Version != "7" || ds.Services["app"].Health.Interval.Std() != time.Second {
		t.Fatalf("desired = %+v, %v", ds, err)
	}
	if gotAuth != "Bearer tok" || gotWait != "30s" || gotIfNoneMatch != "" {
		t.Fatalf("request: auth %q wait %q if-none-match %q", gotAuth, gotWait, gotIfNoneMatch)
	}
	if rel := ds.Services["app"]; rel.Validate() != nil {
		t.Fatalf("the release does not validate: %v", rel.Validate())
	}
	ds, err = c.Desired(ctx, "7", time.Second)
	if ds != nil || err != nil || gotIfNoneMatch != `"7"` {
		t.Fatalf("not modified: %+v, %v (If-None-Match %q)", ds, err, gotIfNoneMatch)
	}
	if err := c.Report(ctx, &Report{Version: "7", Services: []ServiceStatus{{Service: "app", Duration: Duration(1500 * time.Millisecond)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, &RegisterRequest{Name: "n"}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("register with a refused token: %v", err)
	}
}

func TestReleaseValidateNamesTheProblem(t *testing.T) {
	sha := strings.Repeat("0", 64)
	for _, tc := range []struct {
		rel  Release
		want string
	}{
		{Release{ID: "../x", Artifact: &Artifact{URL: "u", SHA256: sha}}, `release id "../x"`},
		{Release{ID: "r1"}, "neither an artifact nor an image"},
		{Release{ID: "r1", Artifact: &Artifact{URL: "u", SHA256: "abc"}}, `artifact.sha256 "abc" is not 64 lower-case hex digits`},
		{Release{ID: "r1", Artifact: &Artifact{URL: "u", SHA256: sha, Format: "zip"}}, `artifact.format "zip"`},
		{Release{ID: "r1", Image: &Image{Ref: "app", Digest: "latest"}}, "image needs a ref and a digest sha256:"},
		{Release{ID: "r1", Artifact: &Artifact{URL: "u", SHA256: sha}, Image: &Image{}}, "both an artifact and an image"},
	} {
		if err := tc.rel.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.rel, err, tc.want)
		}
	}
	if !ValidID("v1.2_3-rc") || ValidID(".hidden") || ValidID("") || ValidID(strings.Repeat("a", 129)) {
		t.Error("ValidID")
	}
}
