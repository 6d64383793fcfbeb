package cli

// The deploy spec registers "kind: service" with the pipeline parser, so
// that `ferry lint` and `ferry exec` check service documents too.
import _ "github.com/ferryci/ferry/internal/deploy/spec"
