package main

import (
	"context"
	"reflect"
	"testing"

	ucli "github.com/urfave/cli/v3"
)

// TestServerNotifyFlag: --notify values keep their commas (on=a,b), the
// flag repeats, and FERRY_NOTIFY takes one endpoint per line, for both
// ferry server and ferry up.
func TestServerNotifyFlag(t *testing.T) {
	for _, cmd := range []func() *ucli.Command{serverCommand, upCommand} {
		for _, tc := range []struct {
			args []string
			env  string
			want []string
		}{
			{args: []string{"--notify", "webhook=https://h.example;on=build.*,deployment.failed", "--notify", "slack=https://s.example"},
				want: []string{"webhook=https://h.example;on=build.*,deployment.failed", "slack=https://s.example"}},
			{env: "webhook=https://h.example;on=build.*,deployment.failed\ngraphite=https://g.example",
				want: []string{"webhook=https://h.example;on=build.*,deployment.failed\ngraphite=https://g.example"}},
		} {
			t.Setenv("FERRY_NOTIFY", tc.env)
			c := cmd()
			var got []string
			c.Action = func(_ context.Context, c *ucli.Command) error {
				got = serverConfig(c).Notify
				return nil
			}
			if err := c.Run(context.Background(), append([]string{c.Name}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %q (FERRY_NOTIFY %q): Notify = %q, want %q", c.Name, tc.args, tc.env, got, tc.want)
			}
		}
	}
}
