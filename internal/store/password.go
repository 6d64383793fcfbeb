package store

import "context"

// PasswordStore persists the password hashes of local users, who may then
// sign in to the web UI with their login and password as well as with a
// token. The store keeps the encoded hash exactly as given (an Argon2id
// PHC string, made above the store); it never sees a password.
type PasswordStore interface {
	// Set replaces the password hash of the user with the given ID; an
	// empty hash removes the password, so that the user can sign in with
	// tokens only. An unknown user returns ErrNotFound.
	Set(ctx context.Context, userID int64, hash string) error
	// GetByLogin returns the user with the given login and its password
	// hash, "" when it has none, or ErrNotFound.
	GetByLogin(ctx context.Context, login string) (*User, string, error)
	// Get returns the password hash of the user with the given ID, ""
	// when it has none, or ErrNotFound.
	Get(ctx context.Context, userID int64) (string, error)
}
