package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/apiclient"
)

// DefaultTokenName names a personal token created without --name.
const DefaultTokenName = "ferry-cli"

// TokenCreate runs `ferry token create`: it creates a personal token and
// prints it, alone on Stdout so that a script can capture it; the server
// shows it this once. The token is the caller's, or with user (an
// administrator's call) that user's. A zero expiresIn never expires.
func (a *API) TokenCreate(ctx context.Context, name, user string, expiresIn time.Duration) error {
	if strings.TrimSpace(name) == "" {
		name = DefaultTokenName
	}
	if expiresIn < 0 {
		return usagef("--expires-in %s must not be negative", expiresIn)
	}
	req := &apiclient.TokenRequest{Name: name, ExpiresIn: apiclient.Duration(expiresIn)}
	var t *apiclient.Token
	var err error
	if user == "" {
		t, err = a.Client.CreateToken(ctx, req)
	} else {
		t, err = a.Client.CreateUserToken(ctx, user, req)
	}
	if err != nil {
		if user != "" {
			return fmt.Errorf("creating a personal token for %s: %w", user, err)
		}
		return fmt.Errorf("creating a personal token: %w", err)
	}
	return a.printNewToken(t, "personal token "+t.Name+" of "+t.User)
}

// AgentTokenCreate runs `ferry agent-token create`: it creates a token
// for `ferry agent --token` (administrators only) and prints it once.
func (a *API) AgentTokenCreate(ctx context.Context, name string, expiresIn time.Duration) error {
	if strings.TrimSpace(name) == "" {
		return usagef("agent-token create needs a NAME")
	}
	if expiresIn < 0 {
		return usagef("--expires-in %s must not be negative", expiresIn)
	}
	t, err := a.Client.CreateAgentToken(ctx, &apiclient.TokenRequest{Name: name, ExpiresIn: apiclient.Duration(expiresIn)})
	if err != nil {
		return fmt.Errorf("creating agent token %s: %w", name, err)
	}
	return a.printNewToken(t, "agent token "+t.Name)
}

// printNewToken prints a token string, with a note on Stderr.
func (a *API) printNewToken(t *apiclient.Token, what string) error {
	if a.JSON {
		return a.printJSON(t)
	}
	fmt.Fprintln(a.Stdout, t.Token)
	note := "created " + what + "; it is shown this once, so store it now"
	if !t.Expires.IsZero() {
		note += " (it expires " + a.stamp(t.Expires) + ")"
	}
	fmt.Fprintln(a.Stderr, note)
	return nil
}

// UserAdd runs `ferry user add` (administrators only).
func (a *API) UserAdd(ctx context.Context, login, email string, admin bool) error {
	if login == "" {
		return usagef("user add needs a LOGIN")
	}
	req := &apiclient.UserRequest{Login: &login, Admin: &admin}
	if email != "" {
		req.Email = &email
	}
	u, err := a.Client.CreateUser(ctx, req)
	if err != nil {
		return fmt.Errorf("adding user %s: %w", login, err)
	}
	if a.JSON {
		return a.printJSON(u)
	}
	role := "user"
	if u.Admin {
		role = "administrator"
	}
	fmt.Fprintf(a.Stdout, "added %s %s; give them a token with `ferry token create --user %s`\n", role, u.Login, u.Login)
	return nil
}

// UserList runs `ferry user ls` (administrators only).
func (a *API) UserList(ctx context.Context) error {
	us, err := a.Client.Users(ctx)
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	return printList(a, us, "", []string{"LOGIN", "EMAIL", "ADMIN", "CREATED"}, func(u *apiclient.User) []string {
		return []string{u.Login, orDash(u.Email), yesNo(u.Admin), a.ago(u.Created)}
	})
}
