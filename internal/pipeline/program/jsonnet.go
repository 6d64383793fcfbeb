package program

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-jsonnet"
	"go.yaml.in/yaml/v4"
)

// The Go Jsonnet interpreter has no step limit and cannot be interrupted,
// and a program can exhaust its Go stack, which kills the whole process.
// So Jsonnet runs in a child process: the running binary started again
// with childEnv set (see init), killed at the deadline, with a memory
// watchdog of its own. The child asks the parent for imported files, so
// that they come from wherever the parent reads the repository (the disk
// for ferry exec, git for the server).
const childEnv = "FERRY_JSONNET_CHILD"

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(jsonnetChild(os.Stdin, os.Stdout))
	}
}

// jsonnetRequest starts a child's evaluation.
type jsonnetRequest struct {
	Name      string            `json:"name"`
	Src       string            `json:"src"`
	ExtVars   map[string]string `json:"ext_vars"`
	MaxMemory uint64            `json:"max_memory"`
	Imports   bool              `json:"imports"`
}

// jsonnetMessage is one line from the child: an import request, or the
// final result or error.
type jsonnetMessage struct {
	Import string `json:"import,omitempty"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// importReply answers an import request.
type importReply struct {
	Data  string `json:"data"`
	Error string `json:"error,omitempty"`
}

func runJsonnet(ctx context.Context, name string, src []byte, o *Options) ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, errorAt(name, 1, 1, "cannot run Jsonnet: finding ferry's own binary: %v", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, errorAt(name, 1, 1, "cannot run Jsonnet: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, errorAt(name, 1, 1, "cannot run Jsonnet: %v", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		return nil, errorAt(name, 1, 1, "cannot run Jsonnet: %v", err)
	}
	result, runErr := talkToChild(stdin, stdout, name, src, o)
	gone := errors.Is(runErr, errChildGone)
	if runErr != nil && !gone {
		// Stopped early (too much output): the child may still be writing.
		_ = cmd.Process.Kill()
	}
	stdin.Close()
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, errorAt(name, 1, 1, "the program ran longer than %s and was stopped; does it recurse or loop without end?", o.Timeout)
	case runErr != nil && !gone:
		return nil, runErr
	case gone:
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "stack overflow") || strings.Contains(msg, "goroutine stack exceeds") {
			return nil, errorAt(name, 1, 1, "the program recursed too deeply and was stopped; does it recurse without end?")
		}
		if first, _, _ := strings.Cut(msg, "\n"); first != "" {
			msg = first
		}
		return nil, errorAt(name, 1, 1, "the Jsonnet evaluation failed (%v): %s", waitErr, msg)
	}
	return jsonnetOutput(name, *result, o)
}

// errChildGone is talkToChild's error when the child stopped talking; its
// exit status and standard error tell why.
var errChildGone = errors.New("the Jsonnet child process ended")

// talkToChild sends the request, answers import requests and returns the
// child's result. Lines longer than the output bound stop the exchange.
func talkToChild(stdin io.Writer, stdout io.Reader, name string, src []byte, o *Options) (*string, error) {
	req := jsonnetRequest{Name: name, Src: string(src), ExtVars: extVars(&o.Input), MaxMemory: o.MaxMemory, Imports: o.Read != nil}
	enc := json.NewEncoder(stdin)
	if err := enc.Encode(&req); err != nil {
		return nil, errChildGone
	}
	r := bufio.NewReaderSize(stdout, 64<<10)
	imports := 0
	for {
		line, err := readLine(r, o.MaxOutput+1024)
		if errors.Is(err, ErrTooLarge) {
			return nil, errorAt(name, 1, 1, "%v: more than %d bytes", ErrTooLarge, o.MaxOutput)
		}
		if err != nil {
			return nil, errChildGone
		}
		var m jsonnetMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, errorAt(name, 1, 1, "the Jsonnet evaluation answered %q", line)
		}
		switch {
		case m.Import != "":
			imports++
			var rep importReply
			switch data, err := readImport(o, m.Import, imports); {
			case err != nil:
				rep.Error = err.Error()
			default:
				rep.Data = string(data)
			}
			if err := enc.Encode(&rep); err != nil {
				return nil, errChildGone
			}
		case m.Error != "":
			return nil, locate(name, m.Error)
		case m.Done:
			return &m.Result, nil
		}
	}
}

func readImport(o *Options, p string, n int) ([]byte, error) {
	if o.Read == nil {
		return nil, errors.New("importing other files is not allowed here")
	}
	if n > o.MaxImports {
		return nil, fmt.Errorf("more than %d files imported", o.MaxImports)
	}
	return o.Read(p)
}

// readLine reads one line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > max {
			return nil, ErrTooLarge
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// jsonnetOutput turns the program's JSON into pipeline YAML: a top-level
// array is a stream of documents, as in Drone.
func jsonnetOutput(name, result string, o *Options) ([]byte, error) {
	out := &output{max: o.MaxOutput}
	if err := out.charge(len(result)); err != nil {
		return nil, errorAt(name, 1, 1, "%v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(result), &root); err != nil || len(root.Content) == 0 {
		return nil, errorAt(name, 1, 1, "the program's output is not a JSON value: %v", err)
	}
	top := root.Content[0]
	blockStyle(top)
	switch top.Kind {
	case yaml.SequenceNode:
		out.docs = top.Content
	case yaml.MappingNode:
		out.docs = []*yaml.Node{top}
	default:
		return nil, errorAt(name, 1, 1, "the program returned %s; it must return an object (one pipeline) or an array of objects", jsonKind(top))
	}
	return out.bytes()
}

func jsonKind(n *yaml.Node) string {
	switch n.Tag {
	case "!!str":
		return "a string"
	case "!!null":
		return "null"
	case "!!bool":
		return "a boolean"
	}
	return "a number"
}

// extVars are the external variables Drone sets: repo.*, build.* and
// build.param.*.
func extVars(in *Input) map[string]string {
	r, b := in.Repo, in.Build
	vars := map[string]string{}
	for k, v := range map[string]string{
		"uid": r.UID, "name": r.Name, "namespace": r.Namespace, "slug": r.Slug, "git_http_url": r.HTTPURL,
		"git_ssh_url": r.SSHURL, "link": r.Link, "branch": r.Branch, "config": r.Config,
		"private": strconv.FormatBool(r.Private), "visibility": r.Visibility, "active": strconv.FormatBool(r.Active),
		"trusted": strconv.FormatBool(r.Trusted), "protected": strconv.FormatBool(r.Protected),
		"ignore_forks": strconv.FormatBool(r.IgnoreForks), "ignore_pull_requests": strconv.FormatBool(r.IgnorePulls),
	} {
		vars["repo."+k] = v
	}
	for k, v := range map[string]string{
		"event": b.Event, "action": b.Action, "environment": b.Environment, "link": b.Link, "branch": b.Branch,
		"source": b.Source, "before": b.Before, "after": b.After, "target": b.Target, "ref": b.Ref,
		"commit": b.Commit, "title": b.Title, "message": b.Message, "source_repo": b.SourceRepo,
		"author_login": b.AuthorLogin, "author_name": b.AuthorName, "author_email": b.AuthorEmail,
		"author_avatar": b.AuthorAvatar, "sender": b.Sender,
	} {
		vars["build."+k] = v
	}
	for k, v := range in.Params {
		vars["build.param."+k] = v
	}
	return vars
}

// jsonnetChild is the child process: it reads a request, evaluates it and
// writes the result, asking its parent for imported files. It returns the
// process's exit code.
func jsonnetChild(in io.Reader, out io.Writer) int {
	// A Go stack overflow ends the process; keep the stack small so that
	// it ends soon, and memory bounded.
	debug.SetMaxStack(256 << 20)
	r := bufio.NewReader(in)
	dec := json.NewDecoder(r)
	enc := json.NewEncoder(out)
	var req jsonnetRequest
	if err := dec.Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "reading the request: %v\n", err)
		return 2
	}
	if req.MaxMemory > 0 {
		go memoryWatchdog(req.MaxMemory)
	}
	vm := jsonnet.MakeVM()
	vm.MaxStack = jsonnetMaxStack
	vm.ErrorFormatter.SetMaxStackTraceSize(20)
	for k, v := range req.ExtVars {
		vm.ExtVar(k, v)
	}
	vm.Importer(&childImporter{root: req.Name, allowed: req.Imports, enc: enc, dec: dec, cache: map[string]jsonnet.Contents{}})
	result, err := vm.EvaluateAnonymousSnippet(req.Name, req.Src)
	if err != nil {
		_ = enc.Encode(&jsonnetMessage{Error: err.Error()})
		return 0
	}
	_ = enc.Encode(&jsonnetMessage{Result: result, Done: true})
	return 0
}

// memoryWatchdog ends the child when its heap exceeds max.
func memoryWatchdog(max uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for range time.Tick(5 * time.Millisecond) {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > max {
			fmt.Fprintf(os.Stderr, "the program used more than %d MB of memory and was stopped\n", max>>20)
			os.Exit(3)
		}
	}
}

// childImporter asks the parent for imported files.
type childImporter struct {
	root    string
	allowed bool
	enc     *json.Encoder
	dec     *json.Decoder
	cache   map[string]jsonnet.Contents
}

// Import implements jsonnet.Importer.
func (i *childImporter) Import(from, imported string) (jsonnet.Contents, string, error) {
	if !i.allowed {
		return jsonnet.Contents{}, "", fmt.Errorf("import %q: importing other files is not allowed here", imported)
	}
	if from == "" {
		from = i.root
	}
	p, err := cleanImport(from, imported)
	if err != nil {
		return jsonnet.Contents{}, "", fmt.Errorf("import %q: %w", imported, err)
	}
	if c, ok := i.cache[p]; ok {
		return c, p, nil
	}
	if err := i.enc.Encode(&jsonnetMessage{Import: p}); err != nil {
		return jsonnet.Contents{}, "", err
	}
	var rep importReply
	if err := i.dec.Decode(&rep); err != nil {
		return jsonnet.Contents{}, "", err
	}
	if rep.Error != "" {
		return jsonnet.Contents{}, "", fmt.Errorf("import %q: %s", imported, rep.Error)
	}
	c := jsonnet.MakeContents(rep.Data)
	i.cache[p] = c
	return c, p, nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
