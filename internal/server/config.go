package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/pipeline"
)

// Config is the server's configuration. cmd/ferry builds one flag per field
// (with a FERRY_* environment variable); DefaultConfig holds the defaults.
type Config struct {
	// Addr is the address the HTTP server listens on.
	Addr string
	// DataDir holds the SQLite database, the generated secret key and the
	// git mirrors.
	DataDir string
	// Database is the store's DSN: a SQLite file path, or a postgres://
	// URL. Empty means DataDir/ferry.db.
	Database string
	// SecretKey is the 32-byte AES key that encrypts secrets at rest,
	// written as hex or base64. It takes precedence over SecretKeyFile.
	SecretKey string
	// SecretKeyFile is a file holding the secret key as hex or base64.
	// When neither SecretKey nor SecretKeyFile is set, the key is read from
	// DataDir/secret.key, which is generated (mode 0600) on first start.
	SecretKeyFile string
	// AdminToken, when set, becomes the admin user's API token on first
	// start, for unattended provisioning. Otherwise a token is generated
	// and printed to the log once (see OnAdminToken). MintAdminToken makes
	// another one later.
	AdminToken string
	// OnAdminToken, when set, receives the token generated on first start
	// instead of the log: `ferry up` prints it below its builds. It is not
	// a flag.
	OnAdminToken func(token string)
	// MetricsToken, when set, is a bearer token that may read /metrics and
	// nothing else, for Prometheus. Admin users' tokens may always read it.
	MetricsToken string
	// URL is the server's public URL, used in links (commit statuses,
	// DRONE_BUILD_LINK). Empty means http://localhost plus Addr's port.
	URL string
	// LeaseTTL is how long a job lease lasts unless its agent extends it.
	LeaseTTL time.Duration
	// MaxAttempts is how many times a job is leased before a lost agent
	// fails it with "agent lost" instead of re-queueing it.
	MaxAttempts int
	// PendingTimeout fails a job that no agent took for this long.
	PendingTimeout time.Duration
	// PollIntervalDefault is the polling interval of a repo added with
	// forge "none" and no poll interval of its own.
	PollIntervalDefault time.Duration
	// GitHubToken and GitHubAPI configure commit statuses on GitHub
	// (GitHubAPI defaults to https://api.github.com).
	GitHubToken string
	GitHubAPI   string
	// GiteaURL and GiteaToken configure commit statuses on Gitea.
	GiteaURL   string
	GiteaToken string
	// GitLabURL and GitLabToken configure commit statuses on GitLab
	// (GitLabURL defaults to https://gitlab.com).
	GitLabURL   string
	GitLabToken string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// OpenRegistration lets every user register repositories; by default
	// only administrators may (docs/security.md).
	OpenRegistration bool
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client may take to send a whole request,
	// headers and body; a slower upload is cut off and its connection
	// closed. Responses are not limited: log streams and long polls last
	// as long as they need.
	ReadTimeout time.Duration
	// MaxConfigSize is the largest pipeline file (.ferry.yml,
	// .drone.yml) the server reads; a larger one fails the build before
	// it is parsed.
	MaxConfigSize int64
	// Notify lists notification endpoints as --notify values,
	// TYPE=URL[;KEY=VALUE]... (notify.ParseFlag); a value of several lines
	// (FERRY_NOTIFY) holds one per line.
	Notify []string
	// NotifyAllowNets are networks (CIDR prefixes or addresses, as
	// --notify-allow-net values) that a repository's notification
	// endpoints (an environment's notify: list) may reach although they
	// are not public; by default they reach public addresses only.
	NotifyAllowNets []string
}

// The defaults of DefaultConfig.
const (
	DefaultAddr                = ":8080"
	DefaultDataDir             = "./ferry-data"
	DefaultLeaseTTL            = 30 * time.Second
	DefaultMaxAttempts         = 2
	DefaultPendingTimeout      = time.Hour
	DefaultPollIntervalDefault = time.Minute
	DefaultGitHubAPI           = "https://api.github.com"
	DefaultGitLabURL           = "https://gitlab.com"
	DefaultLogLevel            = "info"
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = time.Minute
)

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		Addr:                DefaultAddr,
		DataDir:             DefaultDataDir,
		LeaseTTL:            DefaultLeaseTTL,
		MaxAttempts:         DefaultMaxAttempts,
		PendingTimeout:      DefaultPendingTimeout,
		PollIntervalDefault: DefaultPollIntervalDefault,
		GitHubAPI:           DefaultGitHubAPI,
		GitLabURL:           DefaultGitLabURL,
		LogLevel:            DefaultLogLevel,
		ReadHeaderTimeout:   DefaultReadHeaderTimeout,
		ReadTimeout:         DefaultReadTimeout,
		MaxConfigSize:       pipeline.DefaultMaxConfigSize,
	}
}

// Validate checks the configuration and reports the first problem, naming
// the flag.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.LeaseTTL < 100*time.Millisecond {
		return fmt.Errorf("--lease-ttl %s is too short; use at least 100ms", c.LeaseTTL)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("--max-attempts %d must be at least 1", c.MaxAttempts)
	}
	if c.PendingTimeout <= 0 {
		return fmt.Errorf("--pending-timeout %s must be positive", c.PendingTimeout)
	}
	if c.PollIntervalDefault < 0 {
		return fmt.Errorf("--poll-interval-default %s must not be negative", c.PollIntervalDefault)
	}
	if c.ReadHeaderTimeout <= 0 {
		return fmt.Errorf("--read-header-timeout %s must be positive", c.ReadHeaderTimeout)
	}
	if c.ReadTimeout < c.ReadHeaderTimeout {
		return fmt.Errorf("--read-timeout %s must be at least --read-header-timeout %s", c.ReadTimeout, c.ReadHeaderTimeout)
	}
	if c.MaxConfigSize <= 0 {
		return fmt.Errorf("--max-config-size %d must be positive", c.MaxConfigSize)
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--url %q must be an http:// or https:// URL", c.URL)
		}
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := notify.ParseFlags(c.Notify); err != nil {
		return fmt.Errorf("--notify %w", err)
	}
	if _, err := notify.ParseAllowNets(c.NotifyAllowNets); err != nil {
		return fmt.Errorf("--notify-allow-net %w", err)
	}
	return nil
}

// ParseLogLevel parses a --log-level value; empty means info.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// DatabaseDSN returns the store DSN the configuration selects, for
// database.Open.
func (c *Config) DatabaseDSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "ferry.db")
}

// publicURL returns the server's public URL without a trailing slash.
func (c *Config) publicURL() string {
	if c.URL != "" {
		return strings.TrimRight(c.URL, "/")
	}
	port := "8080"
	if i := strings.LastIndex(c.Addr, ":"); i >= 0 && i+1 < len(c.Addr) {
		port = c.Addr[i+1:]
	}
	return "http://localhost:" + port
}

// keySize is the length of the AES-256 key that encrypts secrets.
const keySize = 32

// parseKey decodes a 32-byte key written as hex or as standard or URL-safe
// base64 (padded or not). Surrounding white space is ignored.
func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == keySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == keySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("the key must be %d bytes written as hex (%d digits) or base64", keySize, 2*keySize)
}

// loadKey returns the secret key the configuration selects, generating
// DataDir/secret.key on first start when no key is configured. generated
// reports whether it did.
func (c *Config) loadKey() (key []byte, generated bool, err error) {
	switch {
	case c.SecretKey != "":
		key, err := parseKey(c.SecretKey)
		if err != nil {
			return nil, false, fmt.Errorf("FERRY_SECRET_KEY: %w", err)
		}
		return key, false, nil
	case c.SecretKeyFile != "":
		data, err := os.ReadFile(c.SecretKeyFile)
		if err != nil {
			return nil, false, fmt.Errorf("reading --secret-key-file: %w", err)
		}
		key, err := parseKey(string(data))
		if err != nil {
			return nil, false, fmt.Errorf("--secret-key-file %s: %w", c.SecretKeyFile, err)
		}
		return key, false, nil
	}
	path := filepath.Join(c.DataDir, "secret.key")
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := parseKey(string(data))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("reading secret key: %w", err)
	}
	key = make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generating secret key: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("creating data directory: %w", err)
	}
	// Written to a temporary file and linked into place, so that of two
	// servers starting at once on one data directory, one creates the key
	// and the other reads the complete file.
	f, err := os.CreateTemp(c.DataDir, ".secret.key-*")
	if err != nil {
		return nil, false, fmt.Errorf("writing secret key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("writing secret key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("writing secret key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("writing secret key: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return c.loadKey()
	} else if err != nil {
		return nil, false, fmt.Errorf("writing secret key: %w", err)
	}
	return key, true, nil
}
