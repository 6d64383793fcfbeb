package node

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/ferryci/ferry/internal/artifact"
	"github.com/ferryci/ferry/internal/node/lb"
	"github.com/ferryci/ferry/internal/nodeproto"
)

// Defaults of the node configuration.
const (
	DefaultRoot          = "/var/lib/ferry-node"
	DefaultKeep          = 5
	DefaultCheckInterval = 10 * time.Second
	DefaultPollWait      = 30 * time.Second
	// DefaultMaxUnpackBytes and DefaultMaxUnpackEntries bound what one
	// release's archive may unpack to (unpack.max_bytes,
	// unpack.max_entries). A fixed size rather than a multiple of the
	// artifact's: the size is not always known before the download
	// (standalone mode), and gzip packs repetitive content a thousand to
	// one, so a multiple would refuse honest releases while a fixed 4 GiB
	// still stops a tar bomb before it fills the disk.
	DefaultMaxUnpackBytes   = 4 << 30
	DefaultMaxUnpackEntries = 100_000
)

// Config is the node's YAML configuration file (docs/configuration.md,
// "ferry node").
type Config struct {
	// Root holds each service's releases, current link, downloads and
	// state (default /var/lib/ferry-node).
	Root string `yaml:"root"`
	// Name of the node (default: the host name).
	Name string `yaml:"name"`
	// Labels select the node into environments.
	Labels map[string]string `yaml:"labels"`
	// Keep is how many releases stay on disk per service, the current one
	// included (default 5, at least 2).
	Keep int `yaml:"keep"`
	// User runs hooks, health-check commands and supervised processes
	// ("" : the node's own user). Required when a server is configured and
	// the node runs as root, so that no hook can read the node's token.
	User string `yaml:"user"`
	// Server connects the node to a ferry server; without it the node runs
	// standalone and each service needs watch.
	Server *ServerConfig `yaml:"server"`
	// S3 configures s3:// artifact URLs.
	S3 S3Config `yaml:"s3"`
	// Unpack bounds what one release may unpack to.
	Unpack UnpackConfig `yaml:"unpack"`
	// Services the node runs, by name.
	Services map[string]*ServiceConfig `yaml:"services"`

	file string
}

// ServerConfig is the connection to a ferry server.
type ServerConfig struct {
	// URL of the server.
	URL string `yaml:"url"`
	// TokenFile holds the node token (never on the command line).
	TokenFile string `yaml:"token_file"`
	// PollWait is how long one desired-state long-poll may wait (default 30s).
	PollWait time.Duration `yaml:"poll_wait"`
}

// UnpackConfig bounds a release's archive: an archive that would unpack
// to more is refused before it is written past the limit, and the node
// stays on its release.
type UnpackConfig struct {
	// MaxBytes bounds the total size of the archive's files, and the
	// size of a single-file artifact (default 4 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxEntries bounds the archive's entries: files, directories and
	// links (default 100000).
	MaxEntries int `yaml:"max_entries"`
}

// S3Config configures the S3-compatible artifact store.
type S3Config struct {
	Endpoint      string `yaml:"endpoint"`
	Region        string `yaml:"region"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
	Insecure      bool   `yaml:"insecure"`
}

// ServiceConfig is one service on this node.
type ServiceConfig struct {
	// Watch makes the service standalone: its artifact URL is polled.
	Watch *WatchConfig `yaml:"watch"`
	// User overrides the node's user for this service.
	User string `yaml:"user"`
	// Env is added to the environment of hooks, checks and the process.
	Env map[string]string `yaml:"env"`
	// Hooks run around the switch (a server's release may bring its own).
	Hooks nodeproto.Hooks `yaml:"hooks"`
	// Health checks a release after the switch.
	Health *nodeproto.HealthCheck `yaml:"health"`
	// Run is how the app runs.
	Run RunConfig `yaml:"run"`
	// LB takes the node out of its load balancer around an update.
	LB *lb.Config `yaml:"lb"`
}

// WatchConfig is standalone mode: Dropship-like polling of an artifact.
type WatchConfig struct {
	// URL of the artifact: http(s)://, s3://bucket/key or file:///path.
	URL string `yaml:"url"`
	// ChecksumURL holds the artifact's sha256 (default URL + ".sha256").
	ChecksumURL string `yaml:"checksum_url"`
	// CheckInterval is how often the checksum is read (default 10s).
	CheckInterval time.Duration `yaml:"check_interval"`
	// Format is tar.gz or file (default: from the URL).
	Format string `yaml:"format"`
}

// RunConfig is how the app of a service runs; Mode names a registered run
// mode.
type RunConfig struct {
	// Mode: none (hooks do everything, the default), command, process or
	// docker.
	Mode string `yaml:"mode"`
	// Restart is the command mode's shell command, run after each switch
	// (e.g. "systemctl restart app").
	Restart string `yaml:"restart"`
	// Command is the process mode's shell command, run in the release
	// directory and restarted when it exits; in the docker mode, the
	// container's command (sh -c), replacing the image's.
	Command string `yaml:"command"`
	// StopTimeout is how long a process has after SIGTERM (default 10s).
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// RestartDelay is the pause before restarting a crashed process
	// (default 1s).
	RestartDelay time.Duration `yaml:"restart_delay"`
	// Image runs each release in the docker mode.
	Image string `yaml:"image"`
	// Network is the docker mode's network (default bridge).
	Network string `yaml:"network"`
	// Mount is where the docker mode mounts the release, read-only, as the
	// container's working directory (default /release).
	Mount string `yaml:"mount"`
}

// LoadConfig reads and validates a node configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = path
	return c, nil
}

// ParseConfig parses and validates a node configuration.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, a ...any) { errs = append(errs, fmt.Errorf(field+": "+format, a...)) }
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if !filepath.IsAbs(c.Root) {
		bad("root", "%q must be an absolute path", c.Root)
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.Keep < 2 {
		bad("keep", "%d: keep at least 2 releases (the current one and one to roll back to)", c.Keep)
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Unpack.MaxBytes == 0 {
		c.Unpack.MaxBytes = DefaultMaxUnpackBytes
	}
	if c.Unpack.MaxBytes < 0 {
		bad("unpack.max_bytes", "%d: want a number of bytes above 0 (default %d, 4 GiB)", c.Unpack.MaxBytes, int64(DefaultMaxUnpackBytes))
	}
	if c.Unpack.MaxEntries == 0 {
		c.Unpack.MaxEntries = DefaultMaxUnpackEntries
	}
	if c.Unpack.MaxEntries < 0 {
		bad("unpack.max_entries", "%d: want a number of entries above 0 (default %d)", c.Unpack.MaxEntries, DefaultMaxUnpackEntries)
	}
	if c.Server != nil {
		if c.Server.URL == "" {
			bad("server.url", "required")
		}
		if c.Server.TokenFile == "" {
			bad("server.token_file", "required (the token is read from a file, never from the command line)")
		}
		if c.Server.PollWait == 0 {
			c.Server.PollWait = DefaultPollWait
		}
		if c.User == "" && os.Geteuid() == 0 {
			bad("user", "required when the node runs as root with a server: hooks must not run as root next to the node token")
		}
	}
	if len(c.Services) == 0 {
		bad("services", "no service configured")
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		f := "services." + name
		if !nodeproto.ValidID(name) {
			bad(f, "service names use letters, digits, '.', '_' and '-'")
		}
		if s == nil {
			bad(f, "empty service")
			continue
		}
		if s.Watch == nil && c.Server == nil {
			bad(f+".watch", "required without a server (standalone mode)")
		}
		if w := s.Watch; w != nil {
			if w.URL == "" {
				bad(f+".watch.url", "required")
			}
			if w.CheckInterval == 0 {
				w.CheckInterval = DefaultCheckInterval
			}
			if w.CheckInterval < 0 {
				bad(f+".watch.check_interval", "must be positive")
			}
			if w.Format != "" && w.Format != "tar.gz" && w.Format != "file" {
				bad(f+".watch.format", "%q: want tar.gz or file", w.Format)
			}
		}
		if s.Health != nil {
			if err := validateHealth(s.Health); err != nil {
				bad(f+".health", "%v", err)
			}
		}
		if s.Run.Mode == "" {
			s.Run.Mode = "none"
		}
		if _, ok := runModes[s.Run.Mode]; !ok {
			bad(f+".run.mode", "%q: want one of %s", s.Run.Mode, strings.Join(sortedKeys(runModes), ", "))
		} else if err := runModes[s.Run.Mode].validate(&s.Run); err != nil {
			bad(f+".run", "%v", err)
		}
		if s.LB != nil && !slices.Contains(lb.Names(), s.LB.Driver) {
			bad(f+".lb.driver", "%q: want one of %s", s.LB.Driver, strings.Join(lb.Names(), ", "))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) storeOptions() (artifact.Options, error) {
	o := artifact.Options{S3: artifact.S3Options{Endpoint: c.S3.Endpoint, Region: c.S3.Region, Insecure: c.S3.Insecure}}
	var err error
	if c.S3.AccessKeyFile != "" {
		if o.S3.AccessKey, err = readSecret(c.S3.AccessKeyFile); err != nil {
			return o, fmt.Errorf("s3.access_key_file: %w", err)
		}
	}
	if c.S3.SecretKeyFile != "" {
		if o.S3.SecretKey, err = readSecret(c.S3.SecretKeyFile); err != nil {
			return o, fmt.Errorf("s3.secret_key_file: %w", err)
		}
	}
	return o, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
