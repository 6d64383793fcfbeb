package progress

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"status":"Pulling"}{"status":"Done"}`, ""},
		{``, ""},
		{`{"status":"Pulling"}{"errorDetail":{"message":"manifest unknown"},"error":"other"}`, "manifest unknown"},
		{`{"error":"no space left"}`, "no space left"},
		{`{"status":`, "reading progress: unexpected EOF"},
	} {
		err := Read(strings.NewReader(tc.in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("Read(%q) = %q, want %q", tc.in, got, tc.err)
		}
	}
}
