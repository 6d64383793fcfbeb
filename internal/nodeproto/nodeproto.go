// Package nodeproto is the wire protocol between `ferry node` (the host
// agent on a deploy target) and the ferry server: JSON messages over HTTP,
// always dialled by the node, so a target needs no inbound port.
//
// A node registers with its name and labels, then long-polls its desired
// state (service → release) with the version it last saw; the server answers
// at once when the version differs, or after the wait with 304 Not Modified.
// After each change it applies, the node reports its actual state for every
// service. The protocol is level-triggered: a node that was offline asks with
// an old version and gets the whole current desired state, so it catches up
// without any event being re-sent.
//
// Every request carries the node token as "Authorization: Bearer TOKEN". A
// node token grants these endpoints only.
package nodeproto

import (
	"fmt"
	"time"
)

// Endpoints, relative to the server's base URL.
const (
	// PathRegister is POSTed a RegisterRequest; the answer is a
	// RegisterResponse.
	PathRegister = "/api/node/register"
	// PathDesired is a GET long-poll of DesiredState. Query parameters:
	// "version" (the version the node holds; empty for none) and "wait" (a
	// Go duration, how long the server may hold the request). Also sent as
	// If-None-Match. Answers 200 with a DesiredState, or 304 when the
	// version did not change within the wait.
	PathDesired = "/api/node/desired"
	// PathReport is POSTed a Report; the answer is 204.
	PathReport = "/api/node/report"
)

// RegisterRequest introduces a node. Registering again (after a restart)
// updates the labels and keeps the node's identity, which the token decides.
type RegisterRequest struct {
	// Name is the node's name, unique per server (default: host name).
	Name string `json:"name"`
	// Labels select the node into environments ("role=web", "dc=par1").
	Labels map[string]string `json:"labels,omitempty"`
	// Version is the ferry version the node runs.
	Version string `json:"version,omitempty"`
	// Services lists the services this node is configured to run, each with
	// the release it runs now, so the server knows the actual state at once.
	Services []ServiceStatus `json:"services,omitempty"`
}

// RegisterResponse is the server's answer to RegisterRequest.
type RegisterResponse struct {
	// NodeID is the server's identifier of the node.
	NodeID int64 `json:"node_id"`
	// PollWait is how long the server holds a desired-state long-poll; the
	// node's HTTP timeout must exceed it.
	PollWait Duration `json:"poll_wait,omitempty"`
}

// DesiredState is what the node should run: one release per service.
// Services not named are left alone.
type DesiredState struct {
	// Version identifies this desired state; it changes whenever any
	// service's release changes. Opaque to the node.
	Version string `json:"version"`
	// Services maps a service name to the release it should run.
	Services map[string]Release `json:"services"`
}

// Release is one immutable version of a service: an artifact with its
// sha256, or a container image by digest, plus how to install and check it.
type Release struct {
	// ID names the release; it becomes the directory releases/ID on the
	// node, so it must match ValidID.
	ID string `json:"id"`
	// Artifact is set for artifact releases.
	Artifact *Artifact `json:"artifact,omitempty"`
	// Image is set for container releases.
	Image *Image `json:"image,omitempty"`
	// Hooks run around the switch; when empty, the node's own
	// configuration for the service applies.
	Hooks Hooks `json:"hooks,omitzero"`
	// Health checks the release after the switch; when nil, the node's
	// own configuration applies.
	Health *HealthCheck `json:"health,omitempty"`
	// Serving says whether the service is in its load balancer's rotation
	// (blue-green: the server switches whole slots). Nil, the default and
	// what older servers send, leaves the node in charge: it drains itself
	// around its own switch and re-enables itself once the release is
	// healthy. False keeps it drained: it drains before anything else and
	// installs, switches and checks the release out of rotation, and stays
	// out. True puts it back (after its switch, when the release changes).
	// The node reports what it did in ServiceStatus.Serving; a service
	// without a load balancer refuses a non-nil Serving.
	Serving *bool `json:"serving,omitempty"`
}

// Artifact is a file to download: a tar.gz unpacked into the release
// directory, or a single file placed in it.
type Artifact struct {
	// URL is where to fetch it: http(s)://, s3://bucket/key or file:///path.
	URL string `json:"url"`
	// SHA256 is the hex digest of the file; a download that does not match
	// is refused.
	SHA256 string `json:"sha256"`
	// Size in bytes, when known (0: unknown).
	Size int64 `json:"size,omitempty"`
	// Format is "tar.gz" or "file"; empty means guessed from the URL
	// (.tar.gz and .tgz are archives, anything else a single file).
	Format string `json:"format,omitempty"`
}

// Image is a container image pinned by digest.
type Image struct {
	// Ref is the image name, e.g. "registry.example.com/app".
	Ref string `json:"ref"`
	// Digest is "sha256:…".
	Digest string `json:"digest"`
}

// Hooks are shell commands (run with sh -c) around a switch, as the node's
// configured user, in the release directory, with a clean environment.
type Hooks struct {
	// Before run after the release is unpacked and before `current` moves
	// to it; a failure leaves the previous release in place.
	Before []string `json:"before,omitempty" yaml:"before"`
	// After run once `current` points to the new release (typically a
	// restart); a failure switches back.
	After []string `json:"after,omitempty" yaml:"after"`
	// Rollback run after a failed release was switched back.
	Rollback []string `json:"rollback,omitempty" yaml:"rollback"`
}

// IsZero reports whether no hook is set.
func (h Hooks) IsZero() bool { return len(h.Before)+len(h.After)+len(h.Rollback) == 0 }

// HealthCheck decides whether a release is healthy after the switch.
type HealthCheck struct {
	// Type is "http", "tcp" or "command".
	Type string `json:"type" yaml:"type"`
	// URL for http: healthy on a 2xx or 3xx answer.
	URL string `json:"url,omitempty" yaml:"url"`
	// Address (host:port) for tcp: healthy when a connection opens.
	Address string `json:"address,omitempty" yaml:"address"`
	// Command for command: healthy when it exits 0.
	Command string `json:"command,omitempty" yaml:"command"`
	// Interval between probes.
	Interval Duration `json:"interval,omitempty" yaml:"interval"`
	// Timeout of one probe.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	// HealthyThreshold is how many probes in a row must pass.
	HealthyThreshold int `json:"healthy_threshold,omitempty" yaml:"healthy_threshold"`
	// MinHealthyTime is how long the release must then stay healthy.
	MinHealthyTime Duration `json:"min_healthy_time,omitempty" yaml:"min_healthy_time"`
	// HealthyDeadline bounds the whole check; past it the release failed.
	HealthyDeadline Duration `json:"healthy_deadline,omitempty" yaml:"healthy_deadline"`
}

// Service states in a ServiceStatus.
const (
	StateRunning   = "running"   // the release runs and passed its health check
	StateApplying  = "applying"  // downloading, unpacking, hooks or health check in progress
	StateFailed    = "failed"    // the desired release failed; Release is the one still running
	StateUnhealthy = "unhealthy" // the running release no longer passes its check (reserved: the node does not yet re-check a running release)
)

// Report is the node's actual state, sent after every change.
type Report struct {
	// Version is the desired-state version the node last received.
	Version string `json:"version"`
	// Services is the state of every service the node runs.
	Services []ServiceStatus `json:"services"`
}

// ServiceStatus is the actual state of one service on the node.
type ServiceStatus struct {
	// Service is the service name.
	Service string `json:"service"`
	// Release is the ID of the release `current` points to ("" for none).
	Release string `json:"release,omitempty"`
	// Desired is the release ID the node was last asked to run.
	Desired string `json:"desired,omitempty"`
	// State is one of the State constants.
	State string `json:"state"`
	// Healthy is the last health check's outcome.
	Healthy bool `json:"healthy"`
	// Error explains a failed or unhealthy state, naming the step.
	Error string `json:"error,omitempty"`
	// Kept lists the releases on disk, to which a rollback needs no download.
	Kept []string `json:"kept,omitempty"`
	// Duration is how long the last apply took.
	Duration Duration `json:"duration,omitempty"`
	// LB names the service's load-balancer driver on the node ("haproxy",
	// "hook"; empty: none): blue-green needs one on every node.
	LB string `json:"lb,omitempty"`
	// Serving is the load-balancer state the node last set: true after it
	// made the service ready, false after it drained it; nil when the
	// node has not set it since it started (or has no load balancer).
	Serving *bool `json:"serving,omitempty"`
	// Time is when this status was last changed.
	Time time.Time `json:"time"`
}

// ValidID reports whether id may name a release (and its directory):
// letters, digits, '.', '_' and '-', starting with a letter or digit, at
// most 128 characters. (Not a regexp: compiling one at start-up costs
// every ferry command 100 KB.)
func ValidID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// Validate checks a release as the node receives it.
func (r *Release) Validate() error {
	if !ValidID(r.ID) {
		return fmt.Errorf("release id %q: want letters, digits, '.', '_' or '-', starting with a letter or digit", r.ID)
	}
	switch {
	case r.Artifact != nil && r.Image != nil:
		return fmt.Errorf("release %s: has both an artifact and an image; want one", r.ID)
	case r.Artifact != nil:
		if r.Artifact.URL == "" {
			return fmt.Errorf("release %s: artifact.url is empty", r.ID)
		}
		if !validSHA256(r.Artifact.SHA256) {
			return fmt.Errorf("release %s: artifact.sha256 %q is not 64 lower-case hex digits", r.ID, r.Artifact.SHA256)
		}
		switch r.Artifact.Format {
		case "", "tar.gz", "file":
		default:
			return fmt.Errorf("release %s: artifact.format %q: want tar.gz or file", r.ID, r.Artifact.Format)
		}
	case r.Image != nil:
		if r.Image.Ref == "" || len(r.Image.Digest) != len("sha256:")+64 || !validSHA256(r.Image.Digest[len("sha256:"):]) {
			return fmt.Errorf("release %s: image needs a ref and a digest sha256:<64 hex digits>", r.ID)
		}
	default:
		return fmt.Errorf("release %s: has neither an artifact nor an image", r.ID)
	}
	return nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("1.5s").
type Duration time.Duration

// MarshalText writes d as "1.5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 500ms, 10s or 1m", b)
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
