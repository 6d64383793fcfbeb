package backend

// The backends' names, as used in `ferry exec --backend`, `ferry agent
// --backend` and the "backend" label of a job.
const (
	Docker = "docker"
	Local  = "local"
)

// forType maps a pipeline's type (its `type:` key) to the backend that runs
// it. Kubernetes pipelines run on Docker, as in `drone exec`.
var forType = map[string]string{
	"":           Docker,
	"docker":     Docker,
	"kubernetes": Docker,
	"exec":       Local,
}

// ForType returns the name of the backend that runs pipelines of type typ,
// or false when no backend runs that type. It is the one place that
// decides it: the server labels jobs with it, and the agent and `ferry
// exec` open the backend it names (see internal/backend/registry).
func ForType(typ string) (string, bool) {
	name, ok := forType[typ]
	return name, ok
}
