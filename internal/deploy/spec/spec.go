// Package spec is the "kind: service" document of .ferry.yml: a service,
// its artifact, and the environments it is deployed to, each with a node
// selector, a strategy, a health check, hooks, gates, auto triggers, who may
// deploy, notifications and automatic rollback (docs/configuration.md,
// "Services and environments").
//
// The package registers the kind with internal/pipeline, so pipeline.Parse
// (and with it `ferry lint`, `ferry exec` and the server) accepts and checks
// service documents; the decoded values are in Config.Documents, and
// Services picks them out. Every problem names file:line:col and says what
// would be valid.
package spec

import (
	"fmt"
	"strings"
	"time"

	"github.com/ferryci/ferry/internal/nodeproto"
	"github.com/ferryci/ferry/internal/notify"
	"github.com/ferryci/ferry/internal/pipeline"
)

// Kind is the document kind.
const Kind = "service"

// Defaults of an environment.
const (
	DefaultHealthyDeadline  = 5 * time.Minute
	DefaultProgressDeadline = 30 * time.Minute
	DefaultLockTimeout      = 0
	// DefaultApprovalTimeout bounds how long a deployment waits for an
	// approval (gates.approval, or a canary step's pause: manual) when the
	// environment does not say. Spinnaker's manual judgment has no timeout
	// by default; a deployment that waits forever holds its place (and,
	// paused mid-canary, a fleet running two releases) long after anyone
	// remembers it, so ferry ends it after a day: long enough for an
	// approver in another time zone, short enough that a forgotten one
	// does not ship days later.
	DefaultApprovalTimeout = 24 * time.Hour
)

// Service is a "kind: service" document.
type Service struct {
	// Name of the service; a node runs it under this name.
	Name string `json:"name"`
	// Artifact describes where builds publish the service's releases.
	Artifact Artifact `json:"artifact,omitzero"`
	// Environments in promotion order.
	Environments []*Environment `json:"environments"`
	// Pos is where the document starts.
	Pos pipeline.Pos `json:"-"`
}

// Artifact is how a service's releases are built: a file (URL or path) or
// a container image.
type Artifact struct {
	// URL of the artifact (http(s)://, s3://, file://); may hold ${...}
	// variables of the build.
	URL string `json:"url,omitempty"`
	// Path of the artifact in the workspace, pushed by `ferry artifact push`.
	Path string `json:"path,omitempty"`
	// Image is a container image name; releases pin it by digest.
	Image string `json:"image,omitempty"`
	// Format is tar.gz or file (default: from the name).
	Format string `json:"format,omitempty"`
}

// Environment is one place the service is deployed to.
type Environment struct {
	Name string `json:"name"`
	// Nodes selects the nodes: every label must match.
	Nodes map[string]string `json:"nodes"`
	// Strategy rolls a release out.
	Strategy Strategy `json:"strategy"`
	// Health checks each node after its switch.
	Health Health `json:"health"`
	// Hooks run on the node around the switch.
	Hooks nodeproto.Hooks `json:"hooks,omitzero"`
	// Gates decide whether a deployment may start.
	Gates Gates `json:"gates,omitzero"`
	// Auto deploys green builds that match.
	Auto *Auto `json:"auto,omitempty"`
	// Allow says who may deploy and from which branches.
	Allow Allow `json:"allow,omitzero"`
	// Notify lists the notifications of this environment's deployments.
	Notify []Notify `json:"notify,omitempty"`
	// AutoRollback rolls back a failed deployment (default true).
	AutoRollback bool `json:"auto_rollback"`
	// LockTimeout is how long a deployment waits for the environment's
	// lock; 0 refuses at once, naming the holder.
	LockTimeout time.Duration `json:"lock_timeout,omitempty"`
}

// Strategy is a rollout strategy, by registered name.
type Strategy struct {
	// Type is rolling (the default), canary or blue-green.
	Type string `json:"type"`
	// MaxParallel is rolling's batch size: a count ("2") or a percentage
	// ("25%") of the environment's nodes (default 1).
	MaxParallel Amount `json:"max_parallel,omitzero"`
	// Steps are canary's steps, each a count or percentage of the nodes
	// (cumulative), with a pause after it; the nodes left follow last.
	Steps []CanaryStep `json:"steps,omitempty"`
	// SlotLabel is blue-green's node label naming the slot (default "slot"),
	// whose values are blue and green.
	SlotLabel string `json:"slot_label,omitempty"`
}

// Amount is a count of nodes or a percentage of them.
type Amount struct {
	N       int  `json:"n"`
	Percent bool `json:"percent,omitempty"`
}

// Of returns how many of total nodes a is, at least 1 and at most total.
func (a Amount) Of(total int) int {
	n := a.N
	if a.Percent {
		n = (total*a.N + 99) / 100
	}
	return max(1, min(n, total))
}

// String writes a as "2" or "25%".
func (a Amount) String() string {
	if a.Percent {
		return fmt.Sprintf("%d%%", a.N)
	}
	return fmt.Sprint(a.N)
}

// CanaryStep is one canary step.
type CanaryStep struct {
	// Nodes is how many nodes run the release once the step is done.
	Nodes Amount `json:"nodes"`
	// Pause after the step: a duration, or Manual.
	Pause time.Duration `json:"pause,omitempty"`
	// Manual waits for `ferry approve` (or resume) after the step.
	Manual bool `json:"manual,omitempty"`
	// Timeout bounds a manual pause (DefaultApprovalTimeout when 0): not
	// approved by then, the deployment fails (and rolls back).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Health is the per-node health check plus the deployment's deadlines.
type Health struct {
	nodeproto.HealthCheck
	// ProgressDeadline bounds a whole deployment (default 30m).
	ProgressDeadline time.Duration `json:"progress_deadline,omitempty"`
}

// Gates decide whether a deployment may start.
type Gates struct {
	// Requires names environments that must already run the release.
	Requires []string `json:"requires,omitempty"`
	// Approval, when set, holds a deployment until a user with this role
	// on the repo (or an admin) approves it.
	Approval string `json:"approval,omitempty"`
	// ApprovalTimeout bounds the wait for the approval
	// (DefaultApprovalTimeout when 0): not approved by then, the
	// deployment ends cancelled.
	ApprovalTimeout time.Duration `json:"approval_timeout,omitempty"`
	// Windows are the times deployments may start; none means any time.
	Windows []Window `json:"windows,omitempty"`
	// Freezes are periods no deployment may start.
	Freezes []Freeze `json:"freeze,omitempty"`
}

// Window is a weekly deploy window.
type Window struct {
	// Days are the weekdays, lower-case three letters ("mon"); none means
	// every day.
	Days []string `json:"days,omitempty"`
	// From and To are "HH:MM" in Location; To may be before From to span
	// midnight.
	From string `json:"from"`
	To   string `json:"to"`
	// Timezone is an IANA name (default UTC).
	Timezone string `json:"timezone,omitempty"`
}

// Freeze is a period in which nothing deploys.
type Freeze struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// Auto deploys matching green builds.
type Auto struct {
	// Branches are glob patterns of the build's branch (default: none, so
	// "auto: {}" does nothing); "main" matches main only.
	Branches []string `json:"branches,omitempty"`
	// Events are build events (default push).
	Events []string `json:"events,omitempty"`
}

// Allow says who may deploy and from which branches.
type Allow struct {
	// Users are logins that may deploy.
	Users []string `json:"users,omitempty"`
	// Role is the least repo role that may deploy (default write).
	Role string `json:"role,omitempty"`
	// Branches are glob patterns; a release built from another branch is
	// refused, naming this rule. None means any branch.
	Branches []string `json:"branches,omitempty"`
}

// Notify is one notification endpoint of an environment: the keys of
// internal/notify's Config (type, url, secret, headers, on, timeout, …).
type Notify = notify.Config

// OrDefaultApproval returns d, or DefaultApprovalTimeout when d is 0 (a
// declaration stored before approval timeouts existed).
func OrDefaultApproval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultApprovalTimeout
	}
	return d
}

// Environment returns the environment called name, or nil.
func (s *Service) Environment(name string) *Environment {
	for _, e := range s.Environments {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Next returns the environment after name in promotion order, or nil.
func (s *Service) Next(name string) *Environment {
	for i, e := range s.Environments {
		if e.Name == name && i+1 < len(s.Environments) {
			return s.Environments[i+1]
		}
	}
	return nil
}

// Services returns the service documents of a parsed config.
func Services(cfg *pipeline.Config) []*Service {
	var out []*Service
	for _, d := range cfg.Documents {
		if s, ok := d.Value.(*Service); ok && d.Kind == Kind {
			out = append(out, s)
		}
	}
	return out
}

// Parse reads a file that may hold pipelines and services, and returns its
// services; errors are those of pipeline.Parse.
func Parse(file string, data []byte) ([]*Service, error) {
	cfg, err := pipeline.Parse(file, data)
	if err != nil {
		return nil, err
	}
	return Services(cfg), nil
}

// Matches reports whether labels hold every label of the selector.
func Matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// InWindow reports whether t is inside one of the windows (true when
// there are none), and otherwise describes the windows.
func (g *Gates) InWindow(t time.Time) (bool, string) {
	if len(g.Windows) == 0 {
		return true, ""
	}
	var desc []string
	for _, w := range g.Windows {
		loc := time.UTC
		if w.Timezone != "" {
			if l, err := time.LoadLocation(w.Timezone); err == nil {
				loc = l
			}
		}
		lt := t.In(loc)
		day := strings.ToLower(lt.Weekday().String()[:3])
		desc = append(desc, fmt.Sprintf("%s %s-%s %s", strings.Join(w.Days, ","), w.From, w.To, loc))
		if len(w.Days) > 0 && !contains(w.Days, day) {
			continue
		}
		now := lt.Format("15:04")
		if w.From <= w.To && now >= w.From && now < w.To || w.From > w.To && (now >= w.From || now < w.To) {
			return true, ""
		}
	}
	return false, "outside the deploy windows (" + strings.Join(desc, "; ") + ")"
}

// Frozen returns the freeze that covers t, or nil.
func (g *Gates) Frozen(t time.Time) *Freeze {
	for i, f := range g.Freezes {
		if !t.Before(f.From) && t.Before(f.To) {
			return &g.Freezes[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
