package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/term"

	"github.com/ferryci/ferry/internal/apiclient"
)

// The server's password policy, checked here too so that a bad password
// is a usage error before anything is sent.
const (
	minPassword = 8
	maxPassword = 1024
)

// UserPasswd runs `ferry user passwd [LOGIN]`: it sets the caller's
// password, or with login (an administrator's call) that user's. The new
// password is typed twice without echo at a terminal, or with fromStdin
// read from the first line of Stdin; it is never an argument, which other
// users of the machine could see. Changing one's own password needs the
// current one when the server asks for it: typed at the terminal, or the
// second line of Stdin.
func (a *API) UserPasswd(ctx context.Context, login string, fromStdin bool) error {
	var in *bufio.Reader
	read := func(prompt string) (string, error) {
		if fromStdin {
			if a.Stdin == nil {
				return "", usagef("--password-stdin: there is no standard input")
			}
			if in == nil {
				in = bufio.NewReader(io.LimitReader(a.Stdin, 2*(maxPassword+2)))
			}
			line, err := in.ReadString('\n')
			if err != nil && (!errors.Is(err, io.EOF) || line == "") {
				if errors.Is(err, io.EOF) {
					return "", usagef("--password-stdin: standard input ended before the %s", strings.TrimSuffix(strings.ToLower(prompt), ": "))
				}
				return "", fmt.Errorf("reading standard input: %w", err)
			}
			return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
		}
		f, ok := terminal(a.Stdin)
		if !ok {
			return "", usagef("standard input is not a terminal: type the password at one, or pass --password-stdin to read it from standard input")
		}
		fmt.Fprint(a.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password from the terminal: %w", err)
		}
		return string(b), nil
	}
	who := "your"
	if login != "" {
		who = login + "'s"
	}
	password, err := read("New password: ")
	if err != nil {
		return err
	}
	if n := len(password); n < minPassword || n > maxPassword {
		return usagef("the new password must be %d to %d bytes long; it has %d", minPassword, maxPassword, n)
	}
	if !fromStdin {
		again, err := read("Repeat the new password: ")
		if err != nil {
			return err
		}
		if again != password {
			return usagef("the passwords do not match; nothing was changed")
		}
	}
	if login != "" {
		if err := a.Client.SetUserPassword(ctx, login, password); err != nil {
			return fmt.Errorf("setting %s password: %w", who, err)
		}
	} else {
		req := &apiclient.PasswordRequest{Password: password}
		err := a.Client.SetPassword(ctx, req)
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && ae.Field == "current_password" {
			if req.CurrentPassword, err = read("Current password: "); err != nil {
				return err
			}
			err = a.Client.SetPassword(ctx, req)
		}
		if err != nil {
			return fmt.Errorf("setting %s password: %w", who, err)
		}
	}
	fmt.Fprintf(a.Stderr, "set %s password; sign in to the web UI with it\n", who)
	return nil
}
