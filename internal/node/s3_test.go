package node

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferryci/ferry/internal/artifact"
	"github.com/ferryci/ferry/internal/artifact/s3/s3test"
)

// A standalone node watches an s3:// artifact on a real S3 server
// (versitygw), with its credentials read from files, and picks up each
// new checksum that `ferry artifact push` publishes (the command prints
// the artifact's URL, sha256 and size).
func TestStandaloneWatchesAnS3Artifact(t *testing.T) {
	opts := s3test.Start(t)
	dir := sharedDir(t)
	writeFile(t, filepath.Join(dir, "access"), opts.S3.AccessKey+"\n")
	writeFile(t, filepath.Join(dir, "secret"), opts.S3.SecretKey+"\n")
	// push publishes body with `ferry artifact push`, as a pipeline step would.
	push := func(body []byte) {
		t.Helper()
		src := filepath.Join(dir, "app.tar.gz")
		if err := os.WriteFile(src, body, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ferryBin, "artifact", "push", src, "--store", "s3://releases/app/", "--json",
			"--s3-endpoint", opts.S3.Endpoint, "--s3-insecure", "--s3-secret-key-file", filepath.Join(dir, "secret"))
		cmd.Env = append(os.Environ(), "FERRY_S3_ACCESS_KEY="+opts.S3.AccessKey)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ferry artifact push: %v\n%s", err, out)
		}
		var res artifact.Pushed
		if err := json.Unmarshal(out, &res); err != nil || res.URL != "s3://releases/app/app.tar.gz" || res.SHA256 != sha(body) || res.Size != int64(len(body)) {
			t.Fatalf("ferry artifact push printed %s (%v)", out, err)
		}
	}
	v1, v2 := appRelease(t, "v1"), appRelease(t, "v2")
	push(v1)
	root := filepath.Join(dir, "root")
	cfg := filepath.Join(dir, "node.yml")
	writeFile(t, cfg, fmt.Sprintf(`root: %s
s3: {endpoint: %q, insecure: true, access_key_file: %q, secret_key_file: %q}
services:
  app:
    watch: {url: s3://releases/app/app.tar.gz, check_interval: 50ms}
    health: {type: command, command: test -f version}
`, root, opts.S3.Endpoint, filepath.Join(dir, "access"), filepath.Join(dir, "secret")))
	startNode(t, cfg)
	waitCurrent(t, root, "app", releaseID(v1))
	push(v2)
	st := waitCurrent(t, root, "app", releaseID(v2))
	if st.Releases[releaseID(v2)].URL != "s3://releases/app/app.tar.gz" {
		t.Fatalf("state %+v", st)
	}
}
