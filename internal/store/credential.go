package store

import (
	"context"
	"time"
)

// RepoCredential is what the server and the agents give git to read a
// private repo: an HTTPS username with a password or token, or an SSH
// deploy key. Like a Secret's, its Value is ciphertext that the server
// seals before storing and opens after reading; the store never sees the
// plaintext.
type RepoCredential struct {
	RepoID int64
	// Kind is "https" or "ssh".
	Kind string
	// Username is the HTTPS username; it is not secret and is shown back.
	Username string
	// Value is the sealed secret part: the password or token, or the SSH
	// private key (with its known hosts).
	Value   []byte
	Created time.Time
	Updated time.Time
}

// CredentialStore persists repo credentials, at most one per repo.
type CredentialStore interface {
	// Set creates or replaces the repo's credential, and sets Created (kept
	// when it replaces one) and Updated. An unknown repo returns
	// ErrNotFound.
	Set(ctx context.Context, c *RepoCredential) error
	// Get returns the repo's credential, or ErrNotFound when it has none.
	Get(ctx context.Context, repoID int64) (*RepoCredential, error)
	// Kinds returns the kind of credential of every repo that has one.
	Kinds(ctx context.Context) (map[int64]string, error)
	// Delete removes the repo's credential, or returns ErrNotFound when it
	// has none. Deleting the repo deletes it too.
	Delete(ctx context.Context, repoID int64) error
}
