package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUsageErrors runs ferry's real command tree with bad command lines:
// each gets exit code 2 and exactly one line on stderr naming the problem
// and, when there is one, the closest command or flag; no help page.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `ferry: unknown command "frobnicate"; run ferry --help for the list`},
		{[]string{"exce"}, `ferry: unknown command "exce"; did you mean "exec"?`},
		{[]string{"exec", "--nosuchflag"}, "ferry exec: unknown flag --nosuchflag; run ferry exec --help for the flags"},
		{[]string{"exec", "--jsn"}, "ferry exec: unknown flag --jsn; did you mean --json?"},
		{[]string{"exec", "--timeout", "soon"}, `ferry exec: invalid value "soon" for flag --timeout: `},
		{[]string{"repo", "ad", "x"}, `ferry repo: unknown command "ad"; did you mean "add"?`},
		{[]string{"build", "cancle"}, `ferry build: unknown command "cancle"; did you mean "cancel"?`},
		{[]string{"exec", "--event", "pushh"}, `ferry exec: --event: unknown event "pushh"; did you mean "push"? valid events are: push, pull_request, tag,`},
		{[]string{"up", "--onc"}, "ferry up: unknown flag --onc; did you mean --once?"},
		{[]string{"server", "admin-token", "--data-dri", "x"}, "ferry server admin-token: unknown flag --data-dri; did you mean --data-dir?"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			app := newApp()
			app.Writer, app.ErrWriter = &out, &errb
			code := runApp(context.Background(), app, append([]string{"ferry"}, c.args...), &errb)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if out.Len() != 0 {
				t.Errorf("printed on stdout:\n%s", out.String())
			}
			lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) || !strings.HasSuffix(errb.String(), "\n") {
				t.Errorf("stderr:\n%q\nwant one line starting %q", errb.String(), c.want)
			}
		})
	}
}
