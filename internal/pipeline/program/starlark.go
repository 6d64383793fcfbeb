package program

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sort"
	"strconv"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"go.yaml.in/yaml/v4"
)

// starlarkOptions is the dialect Drone runs: the Starlark of its
// interpreter's defaults (no while loops, no recursion, no set, no
// top-level control flow).
var starlarkOptions = &syntax.FileOptions{}

func runStarlark(ctx context.Context, name string, src []byte, o *Options) ([]byte, error) {
	thread := &starlark.Thread{Name: "ferry", Print: func(*starlark.Thread, string) {}}
	thread.SetMaxExecutionSteps(o.MaxSteps)
	thread.Load = starlarkLoader(o)

	stop := watch(ctx, thread, o.MaxMemory)
	defer stop()

	globals, err := starlark.ExecFileOptions(starlarkOptions, thread, name, src, nil)
	if err != nil {
		return nil, starlarkError(name, err, o)
	}
	mainVal, ok := globals["main"]
	if !ok {
		return nil, errorAt(name, 1, 1, "the program has no main function; Drone calls main(ctx) and uses what it returns")
	}
	main, ok := mainVal.(starlark.Callable)
	if !ok {
		return nil, errorAt(name, 1, 1, "main is a %s, not a function; Drone calls main(ctx)", mainVal.Type())
	}
	ret, err := starlark.Call(thread, main, starlark.Tuple{starlarkContext(&o.Input)}, nil)
	if err != nil {
		return nil, starlarkError(name, err, o)
	}
	out := &output{max: o.MaxOutput}
	switch v := ret.(type) {
	case *starlark.List:
		for i := range v.Len() {
			n, err := out.starlarkValue(v.Index(i))
			if err != nil {
				return nil, errorAt(name, 1, 1, "main returned a value that is not a pipeline: item %d: %v", i, err)
			}
			out.docs = append(out.docs, n)
		}
	case *starlark.Dict:
		n, err := out.starlarkValue(v)
		if err != nil {
			return nil, errorAt(name, 1, 1, "main returned a value that is not a pipeline: %v", err)
		}
		out.docs = append(out.docs, n)
	default:
		return nil, errorAt(name, 1, 1, "main returned a %s; it must return a dict (one pipeline) or a list of dicts", ret.Type())
	}
	return out.bytes()
}

// starlarkError words an interpreter error with its file, line and
// column.
func starlarkError(name string, err error, o *Options) error {
	var se syntax.Error
	if errors.As(err, &se) {
		return errorAt(se.Pos.Filename(), int(se.Pos.Line), int(se.Pos.Col), "%s", se.Msg)
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg := ee.Msg
		if ee.Unwrap() == nil || !errors.As(ee.Unwrap(), new(*Error)) {
			msg = cancelReason(msg, o)
		}
		if len(ee.CallStack) > 0 {
			pos := ee.CallStack.At(0).Pos
			return errorAt(pos.Filename(), int(pos.Line), int(pos.Col), "%s", msg)
		}
		return errorAt(name, 1, 1, "%s", msg)
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return locate(name, err.Error())
}

// cancelReason rewords the interpreter's "computation cancelled" messages.
func cancelReason(msg string, o *Options) string {
	const tooMany = "Starlark computation cancelled: too many steps"
	if msg == tooMany {
		return fmt.Sprintf("the program ran more than %d steps and was stopped; does it loop forever?", o.MaxSteps)
	}
	return msg
}

// watch cancels the thread when ctx ends or when the heap grows by more
// than maxMem while the program runs. A single Starlark step allocates at
// most a bounded amount, so the heap stays within about twice maxMem.
func watch(ctx context.Context, thread *starlark.Thread, maxMem uint64) (stop func()) {
	done := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			return sample[0].Value.Uint64()
		}
		return 0
	}
	start := heap()
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				thread.Cancel("the program ran too long and was stopped (deadline exceeded)")
				return
			case <-tick.C:
				if h := heap(); h > start && h-start > maxMem {
					thread.Cancel(fmt.Sprintf("the program used more than %d MB of memory and was stopped", maxMem>>20))
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// starlarkLoader returns the load() of a program: files of the
// repository, read through o.Read, each executed once, at most
// o.MaxImports of them.
func starlarkLoader(o *Options) func(*starlark.Thread, string) (starlark.StringDict, error) {
	type entry struct {
		globals starlark.StringDict
		err     error
	}
	cache := map[string]*entry{}
	count := 0
	return func(thread *starlark.Thread, module string) (starlark.StringDict, error) {
		if o.Read == nil {
			return nil, fmt.Errorf("load(%q): loading other files is not allowed here", module)
		}
		// Module names are relative to the repository's root, as drone
		// CLI resolves them from the checkout (a file under scripts/ loads
		// "scripts/drone/lib.star", not "lib.star").
		p, err := cleanImport("", module)
		if err != nil {
			return nil, fmt.Errorf("load(%q): %w", module, err)
		}
		if e, ok := cache[p]; ok {
			if e == nil {
				return nil, fmt.Errorf("load(%q): the files load each other in a cycle", module)
			}
			return e.globals, e.err
		}
		count++
		if count > o.MaxImports {
			return nil, fmt.Errorf("load(%q): more than %d files loaded", module, o.MaxImports)
		}
		data, err := o.Read(p)
		if err != nil {
			return nil, fmt.Errorf("load(%q): %w", module, err)
		}
		cache[p] = nil
		globals, err := starlark.ExecFileOptions(starlarkOptions, thread, p, data, nil)
		cache[p] = &entry{globals, err}
		return globals, err
	}
}

// starlarkContext is the ctx argument of main: ctx.repo, ctx.build and
// ctx.input, with the fields Drone gives.
func starlarkContext(in *Input) starlark.Value {
	r, b := in.Repo, in.Build
	s := func(v string) starlark.Value { return starlark.String(v) }
	params := new(starlark.Dict)
	keys := make([]string, 0, len(in.Params))
	for k := range in.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_ = params.SetKey(starlark.String(k), starlark.String(in.Params[k]))
	}
	repo := starlark.StringDict{
		"uid": s(r.UID), "name": s(r.Name), "namespace": s(r.Namespace), "slug": s(r.Slug),
		"git_http_url": s(r.HTTPURL), "git_ssh_url": s(r.SSHURL), "link": s(r.Link), "branch": s(r.Branch),
		"config": s(r.Config), "private": starlark.Bool(r.Private), "visibility": s(r.Visibility),
		"active": starlark.Bool(r.Active), "trusted": starlark.Bool(r.Trusted), "protected": starlark.Bool(r.Protected),
		"ignore_forks": starlark.Bool(r.IgnoreForks), "ignore_pull_requests": starlark.Bool(r.IgnorePulls),
	}
	build := starlark.StringDict{
		"event": s(b.Event), "action": s(b.Action), "cron": s(b.Cron), "environment": s(b.Environment),
		"link": s(b.Link), "branch": s(b.Branch), "source": s(b.Source), "before": s(b.Before),
		"after": s(b.After), "target": s(b.Target), "ref": s(b.Ref), "commit": s(b.Commit),
		"title": s(b.Title), "message": s(b.Message), "source_repo": s(b.SourceRepo),
		"author_login": s(b.AuthorLogin), "author_name": s(b.AuthorName), "author_email": s(b.AuthorEmail),
		"author_avatar": s(b.AuthorAvatar), "sender": s(b.Sender), "debug": starlark.Bool(b.Debug),
		"params": params,
	}
	input := starlark.StringDict{}
	for k, v := range in.Params {
		input[k] = starlark.String(v)
	}
	return starlarkstruct.FromStringDict(starlark.String("context"), starlark.StringDict{
		"repo":  starlarkstruct.FromStringDict(starlark.String("repo"), repo),
		"build": starlarkstruct.FromStringDict(starlark.String("build"), build),
		"input": starlarkstruct.FromStringDict(starlark.String("input"), input),
	})
}

// starlarkValue converts what main returned into a YAML node, in the
// order the program built it.
func (o *output) starlarkValue(v starlark.Value) (*yaml.Node, error) {
	if err := o.charge(8); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case starlark.NoneType:
		return scalar("!!null", "null"), nil
	case starlark.Bool:
		return scalar("!!bool", strconv.FormatBool(bool(v))), nil
	case starlark.Int:
		return scalar("!!int", v.String()), nil
	case starlark.Float:
		return scalar("!!float", strconv.FormatFloat(float64(v), 'g', -1, 64)), nil
	case starlark.String:
		if err := o.charge(len(v)); err != nil {
			return nil, err
		}
		return scalar("!!str", string(v)), nil
	case *starlark.Dict:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, item := range v.Items() {
			k, ok := item[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("a dict key is a %s; keys must be strings", item[0].Type())
			}
			kn, err := o.starlarkValue(k)
			if err != nil {
				return nil, err
			}
			vn, err := o.starlarkValue(item[1])
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, kn, vn)
		}
		return n, nil
	case starlark.Indexable: // list and tuple
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := range v.Len() {
			c, err := o.starlarkValue(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	}
	return nil, fmt.Errorf("a %s cannot be written as YAML", v.Type())
}
