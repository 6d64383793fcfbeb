// Package program runs the pipeline programs Drone reads besides YAML,
// .drone.star (Starlark) and .drone.jsonnet (Jsonnet), and turns what they
// return into pipeline YAML for pipeline.Parse.
//
// The programs get the inputs Drone gives them: Starlark's main(ctx) gets a
// struct with ctx.repo, ctx.build and ctx.input; Jsonnet gets the external
// variables repo.*, build.* and build.param.*. Both are untrusted code, so
// every run is bounded: Starlark by a number of execution steps, a memory
// watchdog and a deadline, Jsonnet by a stack depth, a deadline and one
// evaluation at a time (see Convert); the output of both by a size.
package program

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Default limits; Options fields of zero take these.
const (
	// DefaultMaxSteps bounds a Starlark run. Drone's default is 50,000;
	// real generators (loops over platforms and matrices) need more, and
	// a billion-step loop still ends in about a second.
	DefaultMaxSteps = 5_000_000
	// DefaultMaxOutput bounds the generated YAML: the largest real
	// generated files are about 1 MB.
	DefaultMaxOutput = 8 << 20
	// DefaultTimeout bounds the wall time of one run.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxMemory is how much a Starlark run may grow the heap before
	// it is cancelled.
	DefaultMaxMemory = 512 << 20
	// DefaultMaxImports bounds the files one program may load or import.
	DefaultMaxImports = 100
	// jsonnetMaxStack is Drone's stack depth for Jsonnet.
	jsonnetMaxStack = 500
)

// Input is the build context a program gets, named as Drone names it.
type Input struct {
	Repo  Repo
	Build Build
	// Params are a manual build's parameters (ctx.build.params in
	// Starlark, build.param.NAME in Jsonnet).
	Params map[string]string
}

// Repo is ctx.repo (Starlark) and repo.* (Jsonnet).
type Repo struct {
	UID, Name, Namespace, Slug, HTTPURL, SSHURL, Link, Branch, Config, Visibility string
	Private, Active, Trusted, Protected, IgnoreForks, IgnorePulls                 bool
}

// Build is ctx.build (Starlark) and build.* (Jsonnet).
type Build struct {
	// Event is push, pull_request, tag, promote, rollback, cron or custom.
	Event, Action, Cron string
	// Environment is the deploy target of a promotion.
	Environment string
	Link        string
	// Branch and Target are the branch pushed to, or a pull request's
	// target branch; Source is a pull request's source branch.
	Branch, Source, Target string
	Before, After, Ref     string
	// Commit is the commit built (the same as After).
	Commit, Title, Message, SourceRepo                 string
	AuthorLogin, AuthorName, AuthorEmail, AuthorAvatar string
	Sender                                             string
	Debug                                              bool
}

// ReadFile reads a file of the repository, by its path relative to the
// repository's root, for Starlark's load() and Jsonnet's import.
type ReadFile func(path string) ([]byte, error)

// Options configure Convert.
type Options struct {
	Input Input
	// Read reads the files a program loads or imports; nil refuses them.
	Read ReadFile
	// List lists the names of the files in a directory of the repository,
	// for Woodpecker's .woodpecker directory.
	List func(dir string) ([]string, error)
	// Limits; zero means the default.
	MaxSteps   uint64
	MaxOutput  int
	MaxMemory  uint64
	MaxImports int
	Timeout    time.Duration
}

func (o *Options) defaults() {
	if o.MaxSteps == 0 {
		o.MaxSteps = DefaultMaxSteps
	}
	if o.MaxOutput == 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = DefaultMaxMemory
	}
	if o.MaxImports == 0 {
		o.MaxImports = DefaultMaxImports
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
}

// Kind tells which language a config file is written in, by its name as
// Drone's converters do: "starlark" for .star, .starlark and .script,
// "jsonnet" for .jsonnet; "woodpecker" for Woodpecker's .woodpecker.yml,
// .woodpecker.yaml and .woodpecker directory; "" for Drone YAML.
func Kind(name string) string {
	if isWoodpecker(name) {
		return "woodpecker"
	}
	switch path.Ext(name) {
	case ".star", ".starlark", ".script":
		return "starlark"
	case ".jsonnet":
		return "jsonnet"
	}
	return ""
}

// GeneratedName names the YAML a program generates, for the messages of
// pipeline.Parse: their lines are lines of the generated YAML.
func GeneratedName(name string) string { return name + " (generated YAML)" }

// Error is a problem in a program, at a place in one of its files.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

// Error formats the problem as "FILE:LINE:COL: message".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// ErrTooLarge is wrapped by the error of a program whose output exceeds
// Options.MaxOutput.
var ErrTooLarge = errors.New("the generated configuration is too large")

// Convert runs the program in src, written in the language Kind(name)
// names, and returns the pipeline YAML it generates: one document per
// pipeline (or other resource) the program returns. A program that fails,
// runs too long, uses too much memory or returns too much is an *Error
// naming the file, line and column where that is known. Woodpecker
// configs are converted likewise (name is the .woodpecker directory, or
// the file); warnings are what the conversion leaves out, as
// "FILE:LINE:COL: warning: message" lines.
func Convert(ctx context.Context, name string, src []byte, opts Options) (yaml []byte, warnings []string, err error) {
	opts.defaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	switch Kind(name) {
	case "starlark":
		yaml, err = runStarlark(ctx, name, src, &opts)
		return yaml, nil, err
	case "jsonnet":
		yaml, err = runJsonnet(ctx, name, src, &opts)
		return yaml, nil, err
	case "woodpecker":
		return runWoodpecker(name, src, &opts)
	}
	return src, nil, nil
}

// errorAt builds an *Error, at 1:1 of file when the place is unknown.
func errorAt(file string, line, col int, format string, args ...any) *Error {
	return &Error{File: file, Line: max(line, 1), Column: max(col, 1), Msg: fmt.Sprintf(format, args...)}
}

// locRE finds the first "file:line:col" in an interpreter's message.
var locRE = regexp.MustCompile(`([^\s:()]+):(\d+):(\d+)`)

// locate turns an interpreter's formatted message into an *Error, taking
// the position from the message when it has one.
func locate(file, text string) *Error {
	text = strings.TrimSpace(text)
	first, _, _ := strings.Cut(text, "\n")
	msg := first
	line, col := 1, 1
	where := file
	if m := locRE.FindStringSubmatchIndex(text); m != nil {
		where = text[m[2]:m[3]]
		line, _ = strconv.Atoi(text[m[4]:m[5]])
		col, _ = strconv.Atoi(text[m[6]:m[7]])
		if m[0] < len(first) {
			// "file:1:2-3 message": drop the location from the message.
			if rest := strings.TrimLeft(first[m[1]:], "-0123456789: \t"); rest != "" {
				msg = rest
			}
		}
	}
	return errorAt(where, line, col, "%s", msg)
}

// cleanImport resolves a load or import path relative to the file that
// names it, refusing paths that leave the repository.
func cleanImport(from, p string) (string, error) {
	if path.IsAbs(p) {
		p = strings.TrimPrefix(p, "/")
	} else {
		p = path.Join(path.Dir(from), p)
	}
	p = path.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%q is outside the repository", p)
	}
	return p, nil
}
