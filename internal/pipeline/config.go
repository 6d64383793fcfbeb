// Package pipeline parses ferry's pipeline files (.ferry.yml), which use
// Drone's 1.x format unchanged, into typed values, and validates them with
// errors that name the file, line and column.
package pipeline

// Config is one parsed pipeline file: every YAML document it holds.
type Config struct {
	// File is the name the config was read from, used in error messages.
	File string
	// Pipelines are the "kind: pipeline" documents, in file order.
	Pipelines []*Pipeline
	// Secrets are the "kind: secret" documents (external secret references).
	Secrets []*SecretDoc
	// Warnings are the problems Parse found that Drone tolerates (unknown
	// keys, legacy forms, values Drone ignores), ordered by position. The
	// config runs as Drone would run it; show them to the user.
	Warnings Errors
	// Documents are the documents of kinds registered with RegisterKind
	// (such as "kind: service"), in file order.
	Documents []Document

	// pos records where values were written, for Validate's messages. It
	// is nil for a Config built in code; Validate then falls back to the
	// positions held by Pipeline, Step and Volume.
	pos *positions
}

// Pos is a position in the source file (1-based).
type Pos struct {
	// Line is the 1-based line number.
	Line int
	// Column is the 1-based column, counted in characters.
	Column int
}

// Pipeline is a "kind: pipeline" document. Drone calls it a stage.
type Pipeline struct {
	// Pos is where the document's first key is.
	Pos  Pos
	Kind string // always "pipeline"
	// Type is "docker" (the default) or "exec"; other Drone runner types
	// ("kubernetes", "ssh", ...) are parsed and reported as unsupported by
	// the commands that run pipelines.
	Type string
	// Name is the pipeline's name; Parse sets "default" when the document
	// has none, as Drone does.
	Name      string
	Platform  Platform
	Workspace Workspace
	Clone     Clone
	// Trigger decides whether the pipeline runs for a build.
	Trigger Conditions
	// DependsOn names pipelines of the same file that must finish first.
	DependsOn []string
	// Environment is set in every step; a step's own environment wins.
	// Unlike Drone, which only takes strings here, from_secret is accepted.
	Environment map[string]Value
	// Services run in the background for the whole pipeline.
	Services []*Step
	// Steps are the pipeline's steps, in file order.
	Steps []*Step
	// Volumes are the volumes steps may mount by name.
	Volumes []*Volume
	// Node holds labels an agent must have to run the pipeline.
	Node        map[string]string
	Concurrency Concurrency
	// PullSecrets is image_pull_secrets.
	PullSecrets []string
}

// Platform is the target OS and architecture.
type Platform struct {
	// OS is e.g. "linux", "windows" or "darwin".
	OS string
	// Arch is e.g. "amd64" or "arm64"; Variant refines it ("v7").
	Arch    string
	Variant string
	// Version is the OS version, e.g. a Windows build ("1809").
	Version string
}

// Workspace sets where the repository is checked out inside containers.
type Workspace struct {
	// Base is the mount point of the workspace volume, Path the directory
	// of the checkout below it (Drone: base "/drone", path "src").
	Base string
	Path string
}

// Clone configures the automatic clone step.
type Clone struct {
	// Disable turns the automatic clone step off.
	Disable bool
	// Depth limits the history fetched; 0 means the default.
	Depth int
	// Retries is how often a failed clone is retried.
	Retries int
	// SkipVerify skips TLS certificate verification.
	SkipVerify bool
	// Trace makes git print what it does.
	Trace bool
}

// Concurrency limits how many builds of the pipeline run at once.
type Concurrency struct {
	// Limit is the number of concurrent builds; 0 means no limit.
	Limit int
}

// Volume is a pipeline-level volume.
type Volume struct {
	// Pos is where the volume's entry starts.
	Pos Pos
	// Name is what steps mount the volume by.
	Name string
	// Host is set for "host: {path: ...}" volumes.
	Host *HostVolume
	// Temp is set for "temp: {}" volumes.
	Temp *TempVolume
}

// HostVolume mounts a directory of the host.
type HostVolume struct {
	// Path is the absolute path on the host.
	Path string
}

// TempVolume is a scratch volume for the run.
type TempVolume struct {
	// Medium is "" for a directory on disk, "memory" for a tmpfs.
	Medium string
	// SizeLimit is Drone's size_limit in bytes (0 means no limit); the
	// YAML accepts numbers or strings with units ("64m", "1gb").
	SizeLimit int64
}

// VolumeMount mounts a pipeline volume into a step.
type VolumeMount struct {
	// Name names one of the pipeline's volumes.
	Name string
	// Path is the absolute path inside the step's container.
	Path string
}

// Step is a step or a service.
type Step struct {
	// Pos is where the step's entry starts.
	Pos Pos
	// Name is unique among the pipeline's steps and services.
	Name string
	// Image is the container image; exec pipelines ignore it.
	Image string
	Pull  string // "", "always", "if-not-exists", "never"
	// Shell is Drone's shell key: the interpreter that runs Commands
	// (e.g. "bash", "/bin/zsh", "powershell"); empty means the default.
	Shell string
	// Commands are run in order as a shell script; a single string in the
	// YAML is a list of one.
	Commands []string
	// Entrypoint and Command override the image's, as in Docker. A single
	// string in the YAML is a list of one element; it is not split into
	// words.
	Entrypoint []string
	Command    []string
	// Environment holds the step's variables.
	Environment map[string]Value
	// Settings are plugin settings; each becomes PLUGIN_<KEY>.
	Settings map[string]Value
	// When decides whether the step runs.
	When Conditions
	// DependsOn names steps or services that must finish first; "clone"
	// names the automatic clone step.
	DependsOn []string
	// Detach runs the step in the background.
	Detach bool
	// Failure is "" (a failing step fails the pipeline), "ignore" (it does
	// not), or "fail-fast" (it fails the pipeline and stops the running
	// steps). Parse normalizes Drone's spellings "fast" and "fast-fail" to
	// "fail-fast".
	Failure    string
	Privileged bool
	Volumes    []VolumeMount
	// User runs the step as this user ("1000", "nobody", "1000:1000").
	User string
	// WorkingDir replaces the workspace as the working directory.
	WorkingDir string
	// NetworkMode replaces the pipeline network, e.g. "host".
	NetworkMode string
	// ExtraHosts are "host:ip" entries added to /etc/hosts.
	ExtraHosts []string
	// DNS and DNSSearch set the resolver's servers and search domains.
	DNS       []string
	DNSSearch []string
	// ShmSize and MemLimit are in bytes; the YAML accepts numbers or
	// strings with units ("64m", "1gb").
	ShmSize  int64
	MemLimit int64
	// MemSwapLimit, CPUPeriod, CPUQuota and CPUShares are passed to the
	// container engine unchanged; memswap_limit accepts units like mem_limit.
	MemSwapLimit int64
	CPUPeriod    int64
	CPUQuota     int64
	CPUShares    int64
	// CPUSet is the cpuset, e.g. "0-3" or "1,3".
	CPUSet string
	// Devices map host devices into the step.
	Devices []Device
	// Timeout is a ferry extension: a per-step limit such as "10m".
	Timeout string
}

// Device maps a host device into a step.
type Device struct {
	// Name names one of the pipeline's host volumes, whose path is the
	// device on the host.
	Name string
	// Path is the device's path inside the container.
	Path string
}

// Value is a scalar, list or map from the YAML, or a reference to a secret
// ("from_secret: name").
type Value struct {
	// Secret names a secret when the value was written as from_secret.
	Secret string
	// Raw is the decoded YAML value: string, bool, int, float64, nil,
	// []any or map[string]any. In environment maps Raw is always a string
	// holding the scalar as written (1.10 stays "1.10", null becomes ""),
	// as Drone does; in settings it is the decoded value.
	Raw any
}

// Conditions are the keys of "when" and "trigger". A Condition with no
// include and no exclude patterns matches everything.
type Conditions struct {
	Branch   Condition
	Event    Condition
	Ref      Condition
	Repo     Condition
	Status   Condition
	Target   Condition
	Cron     Condition
	Action   Condition
	Instance Condition
	Paths    Condition
	// Any are alternatives, of which at least one must match besides the
	// conditions above: a ferry extension ("any: [{...}, {...}]") that
	// Woodpecker's list of conditions converts to.
	Any []Conditions
}

// Condition is a list of glob patterns to include and to exclude. See
// Condition.Match for the pattern syntax.
type Condition struct {
	// Include lists the patterns of which one must match; none means any
	// value matches.
	Include []string
	// Exclude lists patterns of which none may match.
	Exclude []string
}

// SecretDoc is a "kind: secret" document.
type SecretDoc struct {
	Pos Pos
	// Name is the name steps use in from_secret.
	Name string
	// Path and Key are get.path and get.name (get.key is accepted as a
	// synonym of get.name): where an external secret store keeps the value.
	Path string
	Key  string
	// Data is an inline (usually encrypted) value.
	Data string
}
