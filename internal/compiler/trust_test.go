package compiler

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferryci/ferry/internal/pipeline"
)

// TestUntrustedIsRefused checks each rule of the trust model: what an
// untrusted pipeline may not do is refused with a message naming the
// pipeline, the step and the rule, and allowed when trusted.
func TestUntrustedIsRefused(t *testing.T) {
	tests := []struct {
		name, yml, backend, want string
	}{
		{"exec pipeline", "kind: pipeline\ntype: exec\nname: p\nsteps:\n- {name: a, commands: [id]}\n", "local",
			`pipeline "p": type: exec runs its steps as processes on the agent's host, which needs ` + RepoTrustHint},
		{"docker pipeline on the host", "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i}\n", "local",
			`pipeline "p": running on the host (the local backend) needs ` + RepoTrustHint},
		{"host volume", "kind: pipeline\nname: p\nvolumes:\n- {name: v, host: {path: /etc}}\nsteps:\n- {name: a, image: i}\n", "docker",
			`pipeline "p": volume "v" mounts host path /etc, which needs ` + RepoTrustHint},
		{"privileged", "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i, privileged: true}\n", "docker",
			`pipeline "p": step "a" is privileged, which needs ` + RepoTrustHint},
		{"privileged service", "kind: pipeline\nname: p\nservices:\n- {name: s, image: i, privileged: true}\nsteps:\n- {name: a, image: i}\n", "docker",
			`pipeline "p": step "s" is privileged, which needs ` + RepoTrustHint},
		{"network_mode host", "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i, network_mode: host}\n", "docker",
			`pipeline "p": step "a": network_mode needs ` + RepoTrustHint},
		{"network_mode container", "kind: pipeline\nname: p\nsteps:\n- {name: a, image: i, network_mode: \"container:abc\"}\n", "docker",
			`pipeline "p": step "a": network_mode needs ` + RepoTrustHint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := pipeline.Parse("t.yml", []byte(tt.yml))
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.Pipelines[0]
			_, err = Compile(p, Options{Backend: tt.backend})
			var te *TrustError
			if !errors.As(err, &te) || len(te.Problems) != 1 || te.Problems[0] != tt.want {
				t.Fatalf("Compile untrusted: %v\nwant: %s", err, tt.want)
			}
			if err := CheckTrust(p, tt.backend, ""); err == nil || err.Error() != tt.want {
				t.Errorf("CheckTrust: %v", err)
			}
			if _, err := Compile(p, Options{Backend: tt.backend, Trusted: true}); err != nil {
				t.Errorf("Compile trusted: %v", err)
			}
		})
	}
}

func TestDevicesNeedTrust(t *testing.T) {
	yml := "kind: pipeline\nname: p\nvolumes:\n- {name: zero, host: {path: /dev/zero}}\nsteps:\n- {name: a, image: i, devices: [{name: zero, path: /dev/z}]}\n"
	cfg, err := pipeline.Parse("t.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckTrust(cfg.Pipelines[0], "docker", "")
	var te *TrustError
	if !errors.As(err, &te) || len(te.Problems) != 2 || te.Problems[1] != `pipeline "p": step "a" maps host devices, which needs `+RepoTrustHint {
		t.Fatalf("err = %v", err)
	}
	if got := te.Located("t.yml"); got[0] != `t.yml:4:3: pipeline "p": volume "zero" mounts host path /dev/zero, which needs `+RepoTrustHint ||
		!strings.HasPrefix(got[1], `t.yml:6:3: pipeline "p": step "a" maps host devices`) {
		t.Errorf("Located: %q", got)
	}
	spec := compile(t, yml, Options{Trusted: true})
	if d := spec.Steps[0].Devices; len(d) != 1 || d[0].Name != "zero" || d[0].Path != "/dev/z" || spec.Volumes[0].HostPath != "/dev/zero" {
		t.Errorf("devices %+v, volumes %+v", d, spec.Volumes[0])
	}
}

// TestExecRunsLocalUntrusted checks that ferry exec (LocalUntrusted) may
// run on the host without --trusted, and still needs it for the rest.
func TestExecRunsLocalUntrusted(t *testing.T) {
	cfg, err := pipeline.Parse("t.yml", []byte("kind: pipeline\ntype: exec\nname: p\nsteps:\n- {name: a, commands: [id], privileged: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(cfg.Pipelines[0], Options{Backend: "local", LocalUntrusted: true, TrustHint: ExecTrustHint})
	if err == nil || err.Error() != `pipeline "p": step "a" is privileged, which needs a trusted run (--trusted)` || strings.Contains(err.Error(), "host") {
		t.Fatalf("err = %v", err)
	}
}
