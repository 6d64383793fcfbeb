package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
)

// The password policy of local users.
const (
	minPasswordLength = 8
	maxPasswordLength = 1024
	// maxPasswordBody bounds the body of the password endpoints; it is
	// read in full, and checked, before anything is hashed.
	maxPasswordBody = 4 << 10
)

// A password sign-in (POST /api/sessions) answers a personal token with
// this name and life, which the web UI keeps in its session cookie.
const (
	sessionTokenName = "web session"
	sessionTTL       = 12 * time.Hour
)

// Brute-force limits: after loginMaxFailures failed sign-ins for one login,
// or from one address, within loginWindow, sign-ins for it are refused until
// the window ends. At most loginMaxKeys logins and addresses are tracked.
const (
	loginMaxFailures = 10
	loginWindow      = 15 * time.Minute
	loginMaxKeys     = 50_000
)

// The Argon2id parameters of new hashes: OWASP's recommendation (19 MiB,
// two passes, one lane). Verifying uses the parameters stored in the hash.
// At most hashConcurrency hashes run at once, which bounds the memory that
// a flood of sign-ins can take.
const (
	argonTime       = 2
	argonMemory     = 19 * 1024
	argonThreads    = 1
	argonKeyLen     = 32
	argonSaltLen    = 16
	hashConcurrency = 2
)

// passwordAuth holds what password sign-ins share: the limiter and the
// hashing slots.
type passwordAuth struct {
	limiter *loginLimiter
	slots   chan struct{}
	// skew moves the clock of the limiter and of session tokens' expiry
	// (nanoseconds); tests set it.
	skew atomic.Int64
	// dummy is a hash that an unknown user's password is checked
	// against, so that an unknown login takes as long as a wrong
	// password.
	dummy func() string
}

func newPasswordAuth() *passwordAuth {
	pa := &passwordAuth{slots: make(chan struct{}, hashConcurrency)}
	pa.limiter = &loginLimiter{max: loginMaxFailures, window: loginWindow, maxKeys: loginMaxKeys,
		now: pa.now, fails: map[string]*failures{}}
	pa.dummy = sync.OnceValue(func() string {
		h, err := hashPassword("ferry dummy password, never matched")
		if err != nil {
			panic(err) // crypto/rand failed
		}
		return h
	})
	return pa
}

func (pa *passwordAuth) now() time.Time { return time.Now().Add(time.Duration(pa.skew.Load())) }

// hash runs fn in a hashing slot, waiting for one at most until r ends.
func (pa *passwordAuth) hash(r *http.Request, fn func()) error {
	select {
	case pa.slots <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	defer func() { <-pa.slots }()
	fn()
	return nil
}

// checkPolicy returns an error naming field when password breaks the
// policy.
func checkPolicy(field, password string) error {
	if n := len(password); n < minPasswordLength || n > maxPasswordLength {
		return badRequest(field, "%s must be %d to %d bytes long; it has %d", field, minPasswordLength, maxPasswordLength, n)
	}
	return nil
}

// hashPassword returns the Argon2id hash of password in PHC string form.
func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating a salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// errBadHash reports a stored hash that is not one hashPassword makes.
var errBadHash = errors.New("the stored password hash is not an Argon2id PHC string")

// verifyPassword reports whether password matches encoded, a hash made by
// hashPassword, comparing in constant time.
func verifyPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, errBadHash
	}
	// Parameters far beyond ours would let a tampered hash exhaust memory.
	if m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 128 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// loginLimiter counts sign-in attempts per key (a login, an address) in a
// fixed window that starts with the first one; a successful attempt is
// taken back. Checking and counting are one step, so that concurrent
// attempts cannot slip past the limit. Its memory is bounded: when maxKeys
// keys are tracked, expired ones are dropped, and if none has expired a new
// key is refused (sign-ins fail closed rather than forget an attacker's
// failures). It is safe for concurrent use.
type loginLimiter struct {
	max     int
	window  time.Duration
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	fails map[string]*failures
}

type failures struct {
	n     int
	first time.Time
}

// attempt counts an attempt for each of keys and returns 0, or, when any
// key has used up its attempts, counts nothing and returns how long until
// it may try again.
func (l *loginLimiter) attempt(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		f, ok := l.fails[k]
		switch {
		case ok && now.Sub(f.first) >= l.window:
			delete(l.fails, k)
			ok = false
		case ok && f.n >= l.max:
			wait = max(wait, f.first.Add(l.window).Sub(now))
		}
		if !ok && len(l.fails) >= l.maxKeys && !l.sweep(now) {
			wait = max(wait, l.window)
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		f, ok := l.fails[k]
		if !ok {
			f = &failures{first: now}
			l.fails[k] = f
		}
		f.n++
	}
	return 0
}

// succeeded takes back the attempt counted for each of keys and forgets
// the failures of login, whose owner proved who they are.
func (l *loginLimiter) succeeded(login string, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, login)
	for _, k := range keys {
		if f, ok := l.fails[k]; ok {
			f.n--
			if f.n <= 0 {
				delete(l.fails, k)
			}
		}
	}
}

// sweep drops expired keys and reports whether there is room for a new
// one. l.mu is held.
func (l *loginLimiter) sweep(now time.Time) bool {
	for k, f := range l.fails {
		if now.Sub(f.first) >= l.window {
			delete(l.fails, k)
		}
	}
	return len(l.fails) < l.maxKeys
}

// clientKey names the address a request came from for the limiter: the
// IP, or for IPv6 its /64 network, which one client usually owns whole.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "addr:" + host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + ip.String()
}

type sessionRequest = api.SessionRequest

// errBadLogin is the one answer to an unknown login, a user without a
// password and a wrong password.
var errBadLogin = &apiError{Status: http.StatusUnauthorized, Message: "wrong login or password"}

// createSession signs a user in with a login and password and answers a
// personal token named "web session" that expires in 12 hours.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req sessionRequest
	if err := decodeBody(w, r, &req, maxPasswordBody, false); err != nil {
		return err
	}
	if req.Login == "" || req.Password == "" {
		return badRequest("login", "login and password are required")
	}
	pa := s.passwords
	// Only well-formed logins get a key of their own, which bounds the
	// keys' size; any login counts against the address.
	keys := []string{clientKey(r)}
	if loginRE().MatchString(req.Login) {
		keys = append(keys, "login:"+req.Login)
	}
	loginKey := "login:" + req.Login
	if d := pa.limiter.attempt(keys...); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
		return errorf(http.StatusTooManyRequests, "", "too many failed sign-ins for this login or from this address; try again in %s",
			(d + time.Second - 1).Truncate(time.Second))
	}
	u, hash, err := s.store.Passwords.GetByLogin(r.Context(), req.Login)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	known := err == nil && hash != ""
	if !known {
		hash = pa.dummy()
	}
	var ok bool
	var verr error
	if len(req.Password) <= maxPasswordLength {
		if err := pa.hash(r, func() { ok, verr = verifyPassword(req.Password, hash) }); err != nil {
			return err
		}
	}
	if verr != nil {
		s.log.Error("checking a password", "user", req.Login, "err", verr)
	}
	if !ok || !known {
		return errBadLogin
	}
	pa.limiter.succeeded(loginKey, keys[0])
	tok, tokHash, err := store.NewToken()
	if err != nil {
		return err
	}
	t := &store.Token{Kind: store.TokenPersonal, UserID: u.ID, Name: sessionTokenName, Hash: tokHash,
		Expires: pa.now().Add(sessionTTL)}
	if err := s.store.Tokens.Create(r.Context(), t); err != nil {
		return err
	}
	out := toTokenJSON(t, u.Login)
	out.Token = tok
	writeJSON(w, http.StatusCreated, out)
	return nil
}

type passwordRequest = api.PasswordRequest

// setOwnPassword sets the caller's password. A user who has a password
// must send it as current_password; one who has none sets the first with
// the token alone.
func (s *Server) setOwnPassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := decodeBody(w, r, &req, maxPasswordBody, false); err != nil {
		return err
	}
	if err := checkPolicy("password", req.Password); err != nil {
		return err
	}
	u := caller(r).user
	current, err := s.store.Passwords.Get(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if current != "" {
		if req.CurrentPassword == "" {
			return badRequest("current_password", "current_password is required to change a password")
		}
		key := "login:" + u.Login
		if d := s.passwords.limiter.attempt(key); d > 0 {
			return errorf(http.StatusTooManyRequests, "current_password", "too many wrong passwords for %s; try again later", u.Login)
		}
		var ok bool
		var verr error
		if len(req.CurrentPassword) <= maxPasswordLength {
			if err := s.passwords.hash(r, func() { ok, verr = verifyPassword(req.CurrentPassword, current) }); err != nil {
				return err
			}
		}
		if verr != nil {
			return verr
		}
		if ok {
			s.passwords.limiter.succeeded(key)
		}
		if !ok {
			return errorf(http.StatusForbidden, "current_password", "current_password is wrong")
		}
	}
	return s.storePassword(w, r, u, req.Password)
}

// setUserPassword sets a user's password (administrators only).
func (s *Server) setUserPassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := decodeBody(w, r, &req, maxPasswordBody, false); err != nil {
		return err
	}
	if req.CurrentPassword != "" {
		return badRequest("current_password", "an administrator sets a password without current_password")
	}
	if err := checkPolicy("password", req.Password); err != nil {
		return err
	}
	u, err := s.userByLogin(r)
	if err != nil {
		return err
	}
	return s.storePassword(w, r, u, req.Password)
}

// storePassword hashes password as u's, ends u's other password
// sessions (their tokens named "web session" that expire), which the old
// password opened, and answers 204.
func (s *Server) storePassword(w http.ResponseWriter, r *http.Request, u *store.User, password string) error {
	var hash string
	var herr error
	if err := s.passwords.hash(r, func() { hash, herr = hashPassword(password) }); err != nil {
		return err
	}
	if herr != nil {
		return herr
	}
	ctx := r.Context()
	if err := s.store.Passwords.Set(ctx, u.ID, hash); err != nil {
		return err
	}
	s.passwords.limiter.succeeded("login:" + u.Login)
	ts, err := s.store.Tokens.List(ctx, u.ID)
	if err != nil {
		return err
	}
	ended := 0
	for _, t := range ts {
		if t.Name != sessionTokenName || t.Expires.IsZero() || t.ID == caller(r).token.ID {
			continue
		}
		if err := s.store.Tokens.Delete(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ended++
	}
	if ended > 0 {
		s.tokens.clear()
	}
	s.log.Info("password set", "user", u.Login, "by", caller(r).name(), "sessions_ended", ended)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
