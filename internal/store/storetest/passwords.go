package storetest

import (
	"testing"

	"github.com/ferryci/ferry/internal/store"
)

func testPasswords(t *testing.T, s *store.Store) {
	c := ctx(t)
	alice := &store.User{Login: "alice", Email: "alice@example.com"}
	must(t, s.Users.Create(c, alice))
	must(t, s.Users.Create(c, &store.User{Login: "bob"}))

	// A new user has no password.
	u, hash, err := s.Passwords.GetByLogin(c, "alice")
	must(t, err)
	eq(t, "id", u.ID, alice.ID)
	eq(t, "email", u.Email, "alice@example.com")
	eq(t, "hash of a new user", hash, "")
	hash, err = s.Passwords.Get(c, alice.ID)
	must(t, err)
	eq(t, "hash of a new user by id", hash, "")

	const h1 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
	must(t, s.Passwords.Set(c, alice.ID, h1))
	_, hash, err = s.Passwords.GetByLogin(c, "alice")
	must(t, err)
	eq(t, "hash after Set", hash, h1)
	_, hash, err = s.Passwords.GetByLogin(c, "bob")
	must(t, err)
	eq(t, "another user's hash", hash, "")

	// Updating the user keeps its password.
	u.Email = "a@example.org"
	must(t, s.Users.Update(c, u))
	hash, err = s.Passwords.Get(c, alice.ID)
	must(t, err)
	eq(t, "hash after a user update", hash, h1)

	// An empty hash removes the password.
	must(t, s.Passwords.Set(c, alice.ID, ""))
	hash, err = s.Passwords.Get(c, alice.ID)
	must(t, err)
	eq(t, "hash after removal", hash, "")

	wantErr(t, s.Passwords.Set(c, alice.ID+1000, h1), store.ErrNotFound)
	_, _, err = s.Passwords.GetByLogin(c, "nobody")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Passwords.Get(c, alice.ID+1000)
	wantErr(t, err, store.ErrNotFound)
}
