package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// CreateSession signs in with a login and password, which needs no token,
// and returns a personal token named "web session" that expires in 12
// hours. A wrong login or password is an *Error with status 401; too many
// failed sign-ins are status 429.
func (c *Client) CreateSession(ctx context.Context, login, password string) (*Token, error) {
	var t Token
	if _, err := c.call(ctx, http.MethodPost, "/api/sessions", nil, &SessionRequest{Login: login, Password: password}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// SetPassword sets the caller's password.
func (c *Client) SetPassword(ctx context.Context, req *PasswordRequest) error {
	_, err := c.call(ctx, http.MethodPut, "/api/user/password", nil, req, nil)
	return err
}

// SetUserPassword sets the password of the user login (administrators
// only).
func (c *Client) SetUserPassword(ctx context.Context, login, password string) error {
	if login == "" {
		return errors.New("user login must not be empty")
	}
	_, err := c.call(ctx, http.MethodPut, "/api/users/"+url.PathEscape(login)+"/password", nil, &PasswordRequest{Password: password}, nil)
	return err
}
