package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

func testUsers(t *testing.T, s *store.Store) {
	c := ctx(t)
	n, err := s.Users.Count(c)
	must(t, err)
	eq(t, "count of a new store", n, 0)

	alice := &store.User{Login: "alice", Email: "alice@example.com", Admin: true}
	must(t, s.Users.Create(c, alice))
	if alice.ID == 0 || alice.Created.IsZero() {
		t.Fatalf("Create did not set ID and Created: %+v", alice)
	}
	must(t, s.Users.Create(c, &store.User{Login: "bob"}))
	wantErr(t, s.Users.Create(c, &store.User{Login: "alice"}), store.ErrConflict)

	got, err := s.Users.GetByLogin(c, "alice")
	must(t, err)
	eq(t, "id", got.ID, alice.ID)
	eq(t, "email", got.Email, "alice@example.com")
	eq(t, "admin", got.Admin, true)
	sameTime(t, "created", got.Created, alice.Created)

	got.Admin, got.Email = false, "a@example.org"
	must(t, s.Users.Update(c, got))
	got, err = s.Users.Get(c, alice.ID)
	must(t, err)
	eq(t, "admin after update", got.Admin, false)
	eq(t, "email after update", got.Email, "a@example.org")

	us, err := s.Users.List(c)
	must(t, err)
	if len(us) != 2 || us[0].Login != "alice" || us[1].Login != "bob" {
		t.Fatalf("List = %v, want alice, bob", us)
	}
	n, err = s.Users.Count(c)
	must(t, err)
	eq(t, "count", n, 2)

	must(t, s.Users.Delete(c, alice.ID))
	_, err = s.Users.Get(c, alice.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.Users.Delete(c, alice.ID), store.ErrNotFound)
	wantErr(t, s.Users.Update(c, alice), store.ErrNotFound)
	_, err = s.Users.GetByLogin(c, "nobody")
	wantErr(t, err, store.ErrNotFound)
}

func testTokens(t *testing.T, s *store.Store) {
	c := ctx(t)
	u := &store.User{Login: "alice"}
	must(t, s.Users.Create(c, u))

	raw, hash, err := store.NewToken()
	must(t, err)
	if !bytes.Equal(hash, store.HashToken(raw)) || len(hash) != 32 {
		t.Fatalf("NewToken hash does not match HashToken")
	}
	raw2, _, err := store.NewToken()
	must(t, err)
	if raw == raw2 {
		t.Fatal("two tokens are equal")
	}

	expires := time.Now().Add(time.Hour)
	pt := &store.Token{Kind: store.TokenPersonal, UserID: u.ID, Name: "laptop", Hash: hash, Expires: expires}
	must(t, s.Tokens.Create(c, pt))
	at := &store.Token{Kind: store.TokenAgent, Name: "agents", Hash: store.HashToken(raw2)}
	must(t, s.Tokens.Create(c, at))
	wantErr(t, s.Tokens.Create(c, &store.Token{Kind: store.TokenAgent, Hash: hash}), store.ErrConflict)

	got, err := s.Tokens.FindByHash(c, store.HashToken(raw))
	must(t, err)
	eq(t, "id", got.ID, pt.ID)
	eq(t, "kind", got.Kind, store.TokenPersonal)
	eq(t, "user", got.UserID, u.ID)
	sameTime(t, "expires", got.Expires, expires)
	if !got.LastUsed.IsZero() {
		t.Fatalf("LastUsed = %v before any use", got.LastUsed)
	}
	_, err = s.Tokens.FindByHash(c, store.HashToken("ferry_wrong"))
	wantErr(t, err, store.ErrNotFound)

	used := time.Now()
	must(t, s.Tokens.Touch(c, pt.ID, used))
	got, err = s.Tokens.FindByHash(c, hash)
	must(t, err)
	sameTime(t, "last used", got.LastUsed, used)

	agentTokens, err := s.Tokens.List(c, 0)
	must(t, err)
	if len(agentTokens) != 1 || agentTokens[0].ID != at.ID || agentTokens[0].Kind != store.TokenAgent {
		t.Fatalf("agent tokens = %+v", agentTokens)
	}
	userTokens, err := s.Tokens.List(c, u.ID)
	must(t, err)
	if len(userTokens) != 1 || userTokens[0].ID != pt.ID {
		t.Fatalf("user tokens = %+v", userTokens)
	}

	// Deleting the user revokes its tokens.
	must(t, s.Users.Delete(c, u.ID))
	_, err = s.Tokens.FindByHash(c, hash)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.Tokens.Delete(c, at.ID))
	wantErr(t, s.Tokens.Delete(c, at.ID), store.ErrNotFound)
}

func testRepos(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := &store.Repo{
		Slug: "acme/web", GitURL: "https://github.com/acme/web.git", Forge: store.ForgeGitHub,
		DefaultBranch: "main", WebhookSecret: "s3cret", ConfigPath: ".drone.yml",
		PollInterval: 90 * time.Second, Trusted: true, Timeout: 45 * time.Minute, Active: true,
	}
	must(t, s.Repos.Create(c, r))
	wantErr(t, s.Repos.Create(c, &store.Repo{Slug: "acme/web", GitURL: "x"}), store.ErrConflict)

	got, err := s.Repos.GetBySlug(c, "acme/web")
	must(t, err)
	want := *r
	if *got != want {
		t.Fatalf("GetBySlug = %+v\nwant %+v", got, &want)
	}
	got.Forge, got.GitURL, got.PollInterval, got.Trusted, got.Active = store.ForgeNone, "file:///srv/web", 0, false, false
	must(t, s.Repos.Update(c, got))
	got2, err := s.Repos.Get(c, r.ID)
	must(t, err)
	if *got2 != *got {
		t.Fatalf("after Update: %+v\nwant %+v", got2, got)
	}
	newRepo(t, s, "acme/api")
	rs, err := s.Repos.List(c)
	must(t, err)
	if len(rs) != 2 || rs[0].Slug != "acme/api" || rs[1].Slug != "acme/web" {
		t.Fatalf("List = %v", rs)
	}
	must(t, s.Repos.Delete(c, r.ID))
	_, err = s.Repos.Get(c, r.ID)
	wantErr(t, err, store.ErrNotFound)
}

func testRepoPolling(t *testing.T, s *store.Store) {
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	polled := &store.Repo{Slug: "a/polled", GitURL: "file:///a", PollInterval: time.Minute, Active: true}
	must(t, s.Repos.Create(c, polled))
	later := &store.Repo{Slug: "a/later", GitURL: "file:///b", PollInterval: time.Minute, Active: true, NextPoll: now.Add(time.Hour)}
	must(t, s.Repos.Create(c, later))
	newRepo(t, s, "a/webhook") // no polling
	inactive := &store.Repo{Slug: "a/inactive", GitURL: "file:///c", PollInterval: time.Minute}
	must(t, s.Repos.Create(c, inactive))

	due, err := s.Repos.DuePolls(c, now)
	must(t, err)
	if len(due) != 1 || due[0].ID != polled.ID {
		t.Fatalf("DuePolls = %v, want only %q", due, polled.Slug)
	}

	// Of several servers claiming the same poll, exactly one wins.
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := s.Repos.ClaimPoll(c, polled.ID, time.Time{}, now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	eq(t, "winning claims", wins, 1)
	ok, err := s.Repos.ClaimPoll(c, later.ID, now, now.Add(2*time.Hour))
	must(t, err)
	eq(t, "claim with a wrong previous time", ok, false)
	ok, err = s.Repos.ClaimPoll(c, later.ID, now.Add(time.Hour), now.Add(2*time.Hour))
	must(t, err)
	eq(t, "claim with the right previous time", ok, true)

	due, err = s.Repos.DuePolls(c, now.Add(90*time.Second))
	must(t, err)
	if len(due) != 1 || due[0].ID != polled.ID {
		t.Fatalf("DuePolls after claim = %v, want only %q", due, polled.Slug)
	}
	sameTime(t, "next poll", due[0].NextPoll, now.Add(time.Minute))
}

func testPerms(t *testing.T, s *store.Store) {
	c := ctx(t)
	u := &store.User{Login: "alice"}
	must(t, s.Users.Create(c, u))
	r1, r2 := newRepo(t, s, "a/one"), newRepo(t, s, "a/two")

	must(t, s.Perms.Set(c, &store.RepoPerm{UserID: u.ID, RepoID: r1.ID, Role: store.RoleRead}))
	must(t, s.Perms.Set(c, &store.RepoPerm{UserID: u.ID, RepoID: r2.ID, Role: store.RoleWrite}))
	must(t, s.Perms.Set(c, &store.RepoPerm{UserID: u.ID, RepoID: r1.ID, Role: store.RoleAdmin}))
	p, err := s.Perms.Get(c, u.ID, r1.ID)
	must(t, err)
	eq(t, "role after second Set", p.Role, store.RoleAdmin)
	byUser, err := s.Perms.ListByUser(c, u.ID)
	must(t, err)
	if len(byUser) != 2 || byUser[0].RepoID != r1.ID || byUser[1].Role != store.RoleWrite {
		t.Fatalf("ListByUser = %+v", byUser)
	}
	byRepo, err := s.Perms.ListByRepo(c, r2.ID)
	must(t, err)
	if len(byRepo) != 1 || byRepo[0].UserID != u.ID {
		t.Fatalf("ListByRepo = %+v", byRepo)
	}
	must(t, s.Perms.Delete(c, u.ID, r1.ID))
	_, err = s.Perms.Get(c, u.ID, r1.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.Perms.Delete(c, u.ID, r1.ID), store.ErrNotFound)
	// A permission needs an existing user and repo.
	if err := s.Perms.Set(c, &store.RepoPerm{UserID: u.ID + 100, RepoID: r1.ID, Role: store.RoleRead}); err == nil {
		t.Fatal("Set for a missing user succeeded")
	}

	for _, tc := range []struct {
		have, need store.Role
		ok         bool
	}{
		{store.RoleRead, store.RoleRead, true},
		{store.RoleRead, store.RoleWrite, false},
		{store.RoleWrite, store.RoleRead, true},
		{store.RoleWrite, store.RoleAdmin, false},
		{store.RoleAdmin, store.RoleWrite, true},
		{"", store.RoleRead, false},
		{store.RoleAdmin, "", false},
	} {
		eq(t, string(tc.have)+" allows "+string(tc.need), tc.have.Allows(tc.need), tc.ok)
	}
}

func testSecrets(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	other := newRepo(t, s, "a/two")
	// The store keeps the given bytes exactly; encryption happens above it,
	// so any byte string must round-trip, not only valid UTF-8.
	value := []byte{0, 1, 2, 0xff, 0xfe, 'x', 0}
	rs := &store.Secret{RepoID: r.ID, Name: "token", Value: value, Events: []string{"push", "tag"}}
	must(t, s.Secrets.Create(c, rs))
	gs := &store.Secret{Name: "token", Value: []byte("global"), AllowPullRequest: true}
	must(t, s.Secrets.Create(c, gs))
	must(t, s.Secrets.Create(c, &store.Secret{Name: "docker", Value: []byte("g2")}))
	must(t, s.Secrets.Create(c, &store.Secret{RepoID: other.ID, Name: "token", Value: []byte("other")}))
	wantErr(t, s.Secrets.Create(c, &store.Secret{RepoID: r.ID, Name: "token"}), store.ErrConflict)
	wantErr(t, s.Secrets.Create(c, &store.Secret{Name: "docker"}), store.ErrConflict)

	got, err := s.Secrets.Find(c, r.ID, "token")
	must(t, err)
	if !bytes.Equal(got.Value, value) {
		t.Fatalf("value = %x, want %x", got.Value, value)
	}
	if !slices.Equal(got.Events, []string{"push", "tag"}) || got.AllowPullRequest {
		t.Fatalf("secret = %+v", got)
	}
	got, err = s.Secrets.Find(c, 0, "token")
	must(t, err)
	eq(t, "global secret", got.ID, gs.ID)
	eq(t, "global secret repo", got.RepoID, 0)
	eq(t, "allow pull request", got.AllowPullRequest, true)
	if len(got.Events) != 0 {
		t.Fatalf("events = %v, want none", got.Events)
	}
	_, err = s.Secrets.Find(c, r.ID, "docker")
	wantErr(t, err, store.ErrNotFound)

	forBuild, err := s.Secrets.ListForBuild(c, r.ID)
	must(t, err)
	if len(forBuild) != 2 || forBuild[0].Name != "docker" || forBuild[1].ID != rs.ID {
		t.Fatalf("ListForBuild = %+v, want global docker and the repo's own token", forBuild)
	}
	globals, err := s.Secrets.List(c, 0)
	must(t, err)
	if len(globals) != 2 {
		t.Fatalf("global secrets = %+v", globals)
	}

	rs.Value, rs.Events, rs.AllowPullRequest = []byte("rotated"), nil, true
	must(t, s.Secrets.Update(c, rs))
	got, err = s.Secrets.Get(c, rs.ID)
	must(t, err)
	if string(got.Value) != "rotated" || !got.AllowPullRequest || len(got.Events) != 0 {
		t.Fatalf("after Update: %+v", got)
	}
	must(t, s.Secrets.Delete(c, rs.ID))
	_, err = s.Secrets.Get(c, rs.ID)
	wantErr(t, err, store.ErrNotFound)
}

func testAgents(t *testing.T, s *store.Store) {
	c := ctx(t)
	seen := time.Now()
	a := &store.Agent{Name: "runner-1", Labels: label("os", "linux", "arch", "amd64"), Capacity: 4, Version: "1.0", LastSeen: seen}
	must(t, s.Agents.Register(c, a))
	got, err := s.Agents.GetByName(c, "runner-1")
	must(t, err)
	eq(t, "id", got.ID, a.ID)
	eq(t, "capacity", got.Capacity, 4)
	eq(t, "label", got.Labels["arch"], "amd64")
	sameTime(t, "last seen", got.LastSeen, seen)

	// Registering again under the same name updates the same agent.
	again := &store.Agent{Name: "runner-1", Labels: label("os", "linux"), Capacity: 2, Version: "1.1"}
	must(t, s.Agents.Register(c, again))
	eq(t, "id after re-register", again.ID, a.ID)
	sameTime(t, "created after re-register", again.Created, a.Created)
	got, err = s.Agents.Get(c, a.ID)
	must(t, err)
	if got.Capacity != 2 || got.Version != "1.1" || len(got.Labels) != 1 {
		t.Fatalf("after re-register: %+v", got)
	}
	newAgent(t, s, "runner-0", nil)
	as, err := s.Agents.List(c)
	must(t, err)
	if len(as) != 2 || as[0].Name != "runner-0" {
		t.Fatalf("List = %+v", as)
	}
	later := seen.Add(time.Minute)
	must(t, s.Agents.Touch(c, a.ID, later))
	got, err = s.Agents.Get(c, a.ID)
	must(t, err)
	sameTime(t, "last seen after touch", got.LastSeen, later)
	must(t, s.Agents.Delete(c, a.ID))
	wantErr(t, s.Agents.Touch(c, a.ID, later), store.ErrNotFound)
}

func testCrons(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/one")
	now := time.Now().UTC().Truncate(time.Microsecond)
	nightly := &store.Cron{RepoID: r.ID, Name: "nightly", Expr: "0 3 * * *", Branch: "main", Next: now.Add(-time.Minute)}
	must(t, s.Crons.Create(c, nightly))
	must(t, s.Crons.Create(c, &store.Cron{RepoID: r.ID, Name: "hourly", Expr: "@hourly", Next: now.Add(time.Hour)}))
	must(t, s.Crons.Create(c, &store.Cron{RepoID: r.ID, Name: "off", Expr: "@daily", Next: now.Add(-time.Hour), Disabled: true}))
	wantErr(t, s.Crons.Create(c, &store.Cron{RepoID: r.ID, Name: "nightly", Expr: "@daily"}), store.ErrConflict)

	due, err := s.Crons.Due(c, now)
	must(t, err)
	if len(due) != 1 || due[0].ID != nightly.ID {
		t.Fatalf("Due = %+v, want only nightly", due)
	}
	next := now.Add(24 * time.Hour)
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := s.Crons.Claim(c, nightly.ID, due[0].Next, next)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	eq(t, "winning claims", wins, 1)
	got, err := s.Crons.Get(c, nightly.ID)
	must(t, err)
	sameTime(t, "next", got.Next, next)

	got.Disabled, got.Expr = true, "@weekly"
	must(t, s.Crons.Update(c, got))
	cs, err := s.Crons.List(c, r.ID)
	must(t, err)
	if len(cs) != 3 || cs[0].Name != "hourly" || cs[1].Name != "nightly" || !cs[1].Disabled || cs[1].Expr != "@weekly" {
		t.Fatalf("List = %+v", cs)
	}
	must(t, s.Crons.Delete(c, nightly.ID))
	_, err = s.Crons.Get(c, nightly.ID)
	wantErr(t, err, store.ErrNotFound)
}

// isLeaseErr reports whether err is a *store.LeaseError for the job.
func isLeaseErr(err error, jobID int64) bool {
	var le *store.LeaseError
	return errors.As(err, &le) && le.JobID == jobID && errors.Is(err, store.ErrLeaseLost)
}

func testRepoPollRefs(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := &store.Repo{Slug: "acme/poll", GitURL: "file:///tmp/x", Active: true}
	must(t, s.Repos.Create(c, r))
	refs, err := s.Repos.PollRefs(c, r.ID)
	must(t, err)
	if refs != nil {
		t.Fatalf("a repo never polled has refs %v, want nil", refs)
	}
	want := map[string]string{"refs/heads/main": "abc", "refs/tags/v1": "def"}
	must(t, s.Repos.SavePollRefs(c, r.ID, want))
	got, err := s.Repos.PollRefs(c, r.ID)
	must(t, err)
	if len(got) != 2 || got["refs/heads/main"] != "abc" || got["refs/tags/v1"] != "def" {
		t.Fatalf("PollRefs = %v, want %v", got, want)
	}
	must(t, s.Repos.SavePollRefs(c, r.ID, map[string]string{}))
	got, err = s.Repos.PollRefs(c, r.ID)
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("after saving no refs PollRefs = %#v, want an empty map", got)
	}
	wantErr(t, s.Repos.SavePollRefs(c, r.ID+1000, want), store.ErrNotFound)
}

func testCredentials(t *testing.T, s *store.Store) {
	c := ctx(t)
	r := newRepo(t, s, "a/private")
	other := newRepo(t, s, "a/other")
	_, err := s.Credentials.Get(c, r.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.Credentials.Delete(c, r.ID), store.ErrNotFound)
	wantErr(t, s.Credentials.Set(c, &store.RepoCredential{RepoID: 9999, Kind: "https", Value: []byte("x")}), store.ErrNotFound)

	// Sealed values are bytes of any kind.
	value := []byte{0, 1, 0xff, 'k', 0}
	cred := &store.RepoCredential{RepoID: r.ID, Kind: "https", Username: "bot", Value: value}
	must(t, s.Credentials.Set(c, cred))
	if cred.Created.IsZero() || !cred.Updated.Equal(cred.Created) {
		t.Fatalf("after the first Set: created %v, updated %v", cred.Created, cred.Updated)
	}
	got, err := s.Credentials.Get(c, r.ID)
	must(t, err)
	if got.Kind != "https" || got.Username != "bot" || !bytes.Equal(got.Value, value) {
		t.Fatalf("Get = %+v", got)
	}
	sameTime(t, "created", got.Created, cred.Created)

	// Set replaces, keeping Created.
	time.Sleep(2 * time.Millisecond) // distinct microsecond stamps; not a wait for anything
	repl := &store.RepoCredential{RepoID: r.ID, Kind: "ssh", Value: []byte("key")}
	must(t, s.Credentials.Set(c, repl))
	sameTime(t, "created after replace", repl.Created, cred.Created)
	if !repl.Updated.After(cred.Updated) {
		t.Errorf("updated %v is not after %v", repl.Updated, cred.Updated)
	}
	got, err = s.Credentials.Get(c, r.ID)
	must(t, err)
	if got.Kind != "ssh" || got.Username != "" || string(got.Value) != "key" {
		t.Fatalf("after replace: %+v", got)
	}
	must(t, s.Credentials.Set(c, &store.RepoCredential{RepoID: other.ID, Kind: "https", Username: "u", Value: []byte("p")}))
	kinds, err := s.Credentials.Kinds(c)
	must(t, err)
	if len(kinds) != 2 || kinds[r.ID] != "ssh" || kinds[other.ID] != "https" {
		t.Fatalf("Kinds = %v", kinds)
	}

	must(t, s.Credentials.Delete(c, r.ID))
	_, err = s.Credentials.Get(c, r.ID)
	wantErr(t, err, store.ErrNotFound)
	// Deleting a repo deletes its credential.
	must(t, s.Repos.Delete(c, other.ID))
	kinds, err = s.Credentials.Kinds(c)
	must(t, err)
	if len(kinds) != 0 {
		t.Fatalf("Kinds after deleting = %v, want none", kinds)
	}
}
