package cli

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// This file reads what `ferry exec` needs from a git repository's files:
// HEAD, refs (loose and packed-refs), remote.origin.url from the config,
// and the HEAD commit from a loose object or a pack (with its deltas). It
// is the part of git's on-disk format that every repository made by git
// since 2010 uses (SHA-1 objects, "files" ref storage, pack index v2). For
// anything else (GIT_DIR and friends in the environment, SHA-256 or
// reftable repositories, config includes, a commit in a re-encoded charset)
// openGitRepo or info returns an error and the caller asks git, as before.
// A library would do the same in ten times the code: go-git, the one
// complete Go implementation, links about 4 MB and its own init work into
// every start of ferry, which is what this avoids.

var (
	// errNoRepo means that dir is not inside a git checkout.
	errNoRepo = errors.New("not a git repository")
	// errUnsupported means that the repository uses a layout this reader
	// does not know; git itself must be asked.
	errUnsupported = errors.New("repository layout not supported")
)

// gitRepo is a repository found on disk.
type gitRepo struct {
	// gitDir holds HEAD (per worktree); commonDir holds refs, objects and
	// config (the same directory, except in a linked worktree).
	gitDir, commonDir string
	remoteURL         string
	// objectDirs are the object directories: the repository's own and its
	// alternates.
	objectDirs []string
}

// openGitRepo finds the repository of the checkout that holds dir, as git
// does: the nearest .git directory or .git file ("gitdir: PATH") in dir
// or above.
func openGitRepo(dir string) (*gitRepo, error) {
	for _, v := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CEILING_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"} {
		if os.Getenv(v) != "" {
			return nil, fmt.Errorf("%w: %s is set", errUnsupported, v)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var gitDir string
	for d := abs; ; d = filepath.Dir(d) {
		dot := filepath.Join(d, ".git")
		fi, err := os.Stat(dot)
		if err == nil && fi.IsDir() {
			gitDir = dot
			break
		}
		if err == nil && fi.Mode().IsRegular() {
			data, err := os.ReadFile(dot)
			if err != nil {
				return nil, err
			}
			p, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir: ")
			if !ok {
				return nil, fmt.Errorf("%w: %s is not a gitdir file", errUnsupported, dot)
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(d, p)
			}
			gitDir = p
			break
		}
		if filepath.Dir(d) == d {
			return nil, errNoRepo
		}
	}
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err != nil {
		return nil, fmt.Errorf("%w: %s has no HEAD", errUnsupported, gitDir)
	}
	r := &gitRepo{gitDir: gitDir, commonDir: gitDir}
	if data, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		p := strings.TrimSpace(string(data))
		if !filepath.IsAbs(p) {
			p = filepath.Join(gitDir, p)
		}
		r.commonDir = filepath.Clean(p)
	}
	if err := r.readConfig(); err != nil {
		return nil, err
	}
	r.objectDirs = []string{filepath.Join(r.commonDir, "objects")}
	if data, err := os.ReadFile(filepath.Join(r.commonDir, "objects", "info", "alternates")); err == nil {
		for line := range strings.Lines(string(data)) {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			if line[0] == '"' {
				return nil, fmt.Errorf("%w: quoted alternate", errUnsupported)
			}
			if !filepath.IsAbs(line) {
				line = filepath.Join(r.commonDir, "objects", line)
			}
			r.objectDirs = append(r.objectDirs, line)
		}
	}
	return r, nil
}

// readConfig reads remote.origin.url from the repository's config and
// checks that nothing in it changes what this reader understands.
func (r *gitRepo) readConfig() error {
	data, err := os.ReadFile(filepath.Join(r.commonDir, "config"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := parseGitConfig(data)
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch {
		case e.section == "include" || e.section == "includeif":
			return fmt.Errorf("%w: config includes", errUnsupported)
		case e.section == "extensions" && e.key == "objectformat" && !strings.EqualFold(e.value, "sha1"):
			return fmt.Errorf("%w: object format %s", errUnsupported, e.value)
		case e.section == "extensions" && e.key == "refstorage" && !strings.EqualFold(e.value, "files"):
			return fmt.Errorf("%w: ref storage %s", errUnsupported, e.value)
		case e.section == "remote" && e.subsection == "origin" && e.key == "url":
			r.remoteURL = e.value // the last one wins, as with git config --get
		}
	}
	return nil
}

// configEntry is one variable of a git config file. Section and key are
// lower-cased (they are case-insensitive); the subsection is as written.
type configEntry struct {
	section, subsection, key, value string
}

// parseGitConfig parses git's config format: [section] and
// [section "subsection"] headers, key = value lines with quotes, escapes,
// comments and continued lines, and keys without a value (true).
func parseGitConfig(data []byte) ([]configEntry, error) {
	var out []configEntry
	var section, subsection string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.LastIndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("%w: config line %q", errUnsupported, line)
			}
			head := line[1:end]
			section, subsection = head, ""
			if name, sub, ok := strings.Cut(head, " "); ok {
				sub = strings.TrimSpace(sub)
				if len(sub) < 2 || sub[0] != '"' || sub[len(sub)-1] != '"' {
					return nil, fmt.Errorf("%w: config section %q", errUnsupported, head)
				}
				section = name
				subsection = strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(sub[1 : len(sub)-1])
			} else if name, sub, ok := strings.Cut(head, "."); ok {
				// The deprecated [section.subsection] form.
				section, subsection = name, strings.ToLower(sub)
			}
			section = strings.ToLower(section)
			if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
				return nil, fmt.Errorf("%w: config line %q", errUnsupported, line)
			}
			continue
		}
		key, raw, hasValue := strings.Cut(line, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !hasValue {
			out = append(out, configEntry{section, subsection, key, "true"})
			continue
		}
		// A value continues on the next line after a backslash.
		for strings.HasSuffix(raw, `\`) && !strings.HasSuffix(raw, `\\`) && i+1 < len(lines) {
			i++
			raw = raw[:len(raw)-1] + lines[i]
		}
		value, err := configValue(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, configEntry{section, subsection, key, value})
	}
	return out, nil
}

// configValue decodes a config value: surrounding blanks go, quoted parts
// keep theirs, an unquoted # or ; starts a comment, and \" \\ \n \t \b are
// escapes.
func configValue(raw string) (string, error) {
	var b strings.Builder
	quoted := false
	pendingSpace := ""
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"':
			quoted = !quoted
			b.WriteString(pendingSpace)
			pendingSpace = ""
		case c == '\\' && i+1 < len(raw):
			i++
			b.WriteString(pendingSpace)
			pendingSpace = ""
			switch raw[i] {
			case '"', '\\':
				b.WriteByte(raw[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			default:
				return "", fmt.Errorf("%w: config escape \\%c", errUnsupported, raw[i])
			}
		case !quoted && (c == '#' || c == ';'):
			return strings.TrimLeft(b.String(), " \t"), nil
		case !quoted && (c == ' ' || c == '\t'):
			pendingSpace += string(c)
		default:
			b.WriteString(pendingSpace)
			pendingSpace = ""
			b.WriteByte(c)
		}
	}
	if quoted {
		return "", fmt.Errorf("%w: unterminated quote in config value", errUnsupported)
	}
	return strings.TrimLeft(b.String(), " \t"), nil
}

// info reads HEAD, the tag that points at its commit and the commit.
// A repository without commits yields only the remote, as git log would.
func (r *gitRepo) info() (gitInfo, error) {
	info := gitInfo{RemoteURL: r.remoteURL}
	head, err := os.ReadFile(filepath.Join(r.gitDir, "HEAD"))
	if err != nil {
		return info, err
	}
	h := strings.TrimSpace(string(head))
	var sha string
	if ref, ok := strings.CutPrefix(h, "ref: "); ok {
		sha, err = r.resolve(ref)
		if errors.Is(err, fs.ErrNotExist) {
			return info, nil // an unborn branch: no commit yet
		}
		if err != nil {
			return info, err
		}
		info.Branch, _ = strings.CutPrefix(ref, "refs/heads/")
		if !strings.HasPrefix(ref, "refs/heads/") {
			info.Branch = ""
		}
	} else {
		sha = h
	}
	if !isSHA1(sha) {
		return info, fmt.Errorf("%w: HEAD is %q", errUnsupported, h)
	}
	typ, data, err := r.readObject(sha)
	if err != nil {
		return info, err
	}
	if typ != objCommit {
		return info, fmt.Errorf("HEAD %s is not a commit", sha)
	}
	c, err := parseCommit(data)
	if err != nil {
		return info, err
	}
	info.SHA = sha
	info.AuthorName, info.AuthorEmail, info.Message = c.authorName, c.authorEmail, c.message
	info.Tag, err = r.tagOf(sha)
	return info, err
}

func isSHA1(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// resolve returns the object a ref names, following symbolic refs: a
// loose ref file (in the worktree's directory first, then the common one)
// or a line of packed-refs. It returns fs.ErrNotExist for a missing ref.
func (r *gitRepo) resolve(ref string) (string, error) {
	for range 10 {
		var data []byte
		var err error
		for _, d := range []string{r.gitDir, r.commonDir} {
			data, err = os.ReadFile(filepath.Join(d, filepath.FromSlash(ref)))
			if err == nil || !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			packed, perr := r.packedRefs()
			if perr != nil {
				return "", perr
			}
			if p, ok := packed[ref]; ok {
				return p.sha, nil
			}
			return "", fs.ErrNotExist
		}
		if err != nil {
			return "", err
		}
		v := strings.TrimSpace(string(data))
		next, ok := strings.CutPrefix(v, "ref: ")
		if !ok {
			return v, nil
		}
		ref = next
	}
	return "", fmt.Errorf("%w: symbolic refs nested too deep", errUnsupported)
}

// packedRef is a line of packed-refs, with the commit an annotated tag
// peels to when the file records it.
type packedRef struct{ sha, peeled string }

// packedRefs reads the common directory's packed-refs file.
func (r *gitRepo) packedRefs() (map[string]packedRef, error) {
	data, err := os.ReadFile(filepath.Join(r.commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]packedRef{}
	last := ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '^':
			if p, ok := out[last]; ok {
				p.peeled = line[1:]
				out[last] = p
			}
		default:
			sha, name, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("%w: packed-refs line %q", errUnsupported, line)
			}
			out[name] = packedRef{sha: sha}
			last = name
		}
	}
	return out, nil
}

// tagOf returns the name of a tag that points at commit sha, or "". Of
// several, it returns the one git log's %D lists first: the last by name.
func (r *gitRepo) tagOf(sha string) (string, error) {
	packed, err := r.packedRefs()
	if err != nil {
		return "", err
	}
	tags := map[string]packedRef{}
	for name, p := range packed {
		if t, ok := strings.CutPrefix(name, "refs/tags/"); ok {
			tags[t] = p
		}
	}
	root := filepath.Join(r.commonDir, "refs", "tags")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		tags[filepath.ToSlash(rel)] = packedRef{sha: strings.TrimSpace(string(data))} // a loose ref wins
		return nil
	})
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(tags))
	for name := range tags {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range slices.Backward(names) {
		p := tags[name]
		switch {
		case p.sha == sha || p.peeled == sha:
			return name, nil
		case p.peeled != "" || !isSHA1(p.sha):
			continue
		}
		// A loose annotated tag: peel it.
		target := p.sha
		for range 10 {
			typ, data, err := r.readObject(target)
			if err != nil || typ != objTag {
				break
			}
			obj, _, _ := strings.Cut(string(data), "\n")
			target, _ = strings.CutPrefix(obj, "object ")
			if target == sha {
				return name, nil
			}
		}
	}
	return "", nil
}

// commit is what exec reads of a commit object.
type commit struct {
	authorName, authorEmail, message string
}

// parseCommit parses a commit object's headers and message, as git log's
// %an, %ae and %B show them (the message without trailing newlines).
func parseCommit(data []byte) (commit, error) {
	var c commit
	headers, msg, _ := bytes.Cut(data, []byte("\n\n"))
	for line := range bytes.Lines(headers) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case bytes.HasPrefix(line, []byte("author ")):
			a := string(line[len("author "):])
			lt, gt := strings.IndexByte(a, '<'), strings.LastIndexByte(a, '>')
			if lt < 0 || gt < lt {
				return c, fmt.Errorf("bad author line %q", a)
			}
			c.authorName = strings.TrimSpace(a[:lt])
			c.authorEmail = a[lt+1 : gt]
		case bytes.HasPrefix(line, []byte("encoding ")):
			if enc := string(line[len("encoding "):]); !strings.EqualFold(enc, "utf-8") && !strings.EqualFold(enc, "utf8") {
				return c, fmt.Errorf("%w: commit encoding %s", errUnsupported, enc)
			}
		}
	}
	c.message = strings.TrimRight(string(msg), "\n")
	return c, nil
}

// Object types, as numbered in pack files.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

var objTypes = map[string]int{"commit": objCommit, "tree": objTree, "blob": objBlob, "tag": objTag}

// readObject returns an object's type and content, from a loose object
// file or from a pack.
func (r *gitRepo) readObject(sha string) (int, []byte, error) {
	if !isSHA1(sha) {
		return 0, nil, fmt.Errorf("bad object name %q", sha)
	}
	sha = strings.ToLower(sha)
	for _, dir := range r.objectDirs {
		typ, data, err := readLooseObject(filepath.Join(dir, sha[:2], sha[2:]))
		if !errors.Is(err, fs.ErrNotExist) {
			return typ, data, err
		}
	}
	for _, dir := range r.objectDirs {
		typ, data, err := r.readPackedObject(dir, sha)
		if !errors.Is(err, fs.ErrNotExist) {
			return typ, data, err
		}
	}
	return 0, nil, fmt.Errorf("%w: object %s not found (a partial clone?)", errUnsupported, sha)
}

// readLooseObject reads a zlib-compressed "TYPE SIZE\0CONTENT" file.
func readLooseObject(path string) (int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	z, err := zlib.NewReader(bufio.NewReader(f))
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer z.Close()
	data, err := io.ReadAll(z)
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	head, body, ok := bytes.Cut(data, []byte{0})
	typName, _, _ := strings.Cut(string(head), " ")
	typ := objTypes[typName]
	if !ok || typ == 0 {
		return 0, nil, fmt.Errorf("reading %s: bad object header %q", path, head)
	}
	return typ, body, nil
}

// readPackedObject finds sha in the pack indexes (version 2) of an object
// directory and reads it from its pack, applying deltas.
func (r *gitRepo) readPackedObject(objDir, sha string) (int, []byte, error) {
	idxs, err := filepath.Glob(filepath.Join(objDir, "pack", "*.idx"))
	if err != nil {
		return 0, nil, err
	}
	want, _ := hex.DecodeString(sha)
	for _, idx := range idxs {
		off, err := findInIndex(idx, want)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		pack, err := os.Open(strings.TrimSuffix(idx, ".idx") + ".pack")
		if err != nil {
			return 0, nil, err
		}
		defer pack.Close()
		return r.readPackEntry(pack, off, 0)
	}
	return 0, nil, fs.ErrNotExist
}

// findInIndex returns the pack offset of the object named want in a
// version 2 pack index, or fs.ErrNotExist.
func findInIndex(path string, want []byte) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	const header = 8
	if len(data) < header+256*4 || !bytes.Equal(data[:4], []byte{0xff, 't', 'O', 'c'}) || binary.BigEndian.Uint32(data[4:]) != 2 {
		return 0, fmt.Errorf("%w: pack index %s is not version 2", errUnsupported, path)
	}
	fanout := func(i int) int { return int(binary.BigEndian.Uint32(data[header+4*i:])) }
	n := fanout(255)
	names := header + 256*4
	crcs := names + 20*n
	offsets := crcs + 4*n
	large := offsets + 4*n
	if len(data) < large {
		return 0, fmt.Errorf("pack index %s is truncated", path)
	}
	lo, hi := 0, fanout(int(want[0]))
	if want[0] > 0 {
		lo = fanout(int(want[0]) - 1)
	}
	// A binary search over the sorted names [lo, hi).
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(data[names+20*mid:names+20*mid+20], want); {
		case c == 0:
			off := binary.BigEndian.Uint32(data[offsets+4*mid:])
			if off&0x80000000 == 0 {
				return int64(off), nil
			}
			j := large + 8*int(off&0x7fffffff)
			if len(data) < j+8 {
				return 0, fmt.Errorf("pack index %s is truncated", path)
			}
			return int64(binary.BigEndian.Uint64(data[j:])), nil
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, fs.ErrNotExist
}

// maxDeltaDepth bounds a chain of deltas (git's default is 50, its most
// aggressive setting 250).
const maxDeltaDepth = 1000

// readPackEntry reads the object at off in pack, resolving deltas.
func (r *gitRepo) readPackEntry(pack *os.File, off int64, depth int) (int, []byte, error) {
	if depth > maxDeltaDepth {
		return 0, nil, fmt.Errorf("delta chain longer than %d", maxDeltaDepth)
	}
	br := bufio.NewReader(io.NewSectionReader(pack, off, 1<<62))
	c, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	typ := int(c>>4) & 7
	size := uint64(c & 15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if c, err = br.ReadByte(); err != nil {
			return 0, nil, err
		}
		size |= uint64(c&0x7f) << shift
	}
	var baseTyp int
	var base []byte
	switch typ {
	case objCommit, objTree, objBlob, objTag:
		data, err := inflate(br, size)
		return typ, data, err
	case objOfsDelta:
		c, err := br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		rel := int64(c & 0x7f)
		for c&0x80 != 0 {
			if c, err = br.ReadByte(); err != nil {
				return 0, nil, err
			}
			rel = (rel+1)<<7 | int64(c&0x7f)
		}
		if rel <= 0 || rel > off {
			return 0, nil, fmt.Errorf("bad delta base offset in pack")
		}
		baseTyp, base, err = r.readPackEntry(pack, off-rel, depth+1)
		if err != nil {
			return 0, nil, err
		}
	case objRefDelta:
		var name [20]byte
		if _, err := io.ReadFull(br, name[:]); err != nil {
			return 0, nil, err
		}
		baseTyp, base, err = r.readObject(hex.EncodeToString(name[:]))
		if err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, fmt.Errorf("unknown object type %d in pack", typ)
	}
	delta, err := inflate(br, size)
	if err != nil {
		return 0, nil, err
	}
	data, err := applyDelta(base, delta)
	return baseTyp, data, err
}

// inflate decompresses a zlib stream that holds size bytes.
func inflate(r io.Reader, size uint64) ([]byte, error) {
	z, err := zlib.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(z, data); err != nil {
		return nil, fmt.Errorf("inflating a pack entry: %w", err)
	}
	return data, nil
}

// applyDelta applies a git delta (source size, target size, then copy and
// insert instructions) to base.
func applyDelta(base, delta []byte) ([]byte, error) {
	varint := func() (uint64, error) {
		var v uint64
		for shift := 0; ; shift += 7 {
			if len(delta) == 0 || shift > 63 {
				return 0, errors.New("truncated delta")
			}
			c := delta[0]
			delta = delta[1:]
			v |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return v, nil
			}
		}
	}
	srcSize, err := varint()
	if err != nil {
		return nil, err
	}
	dstSize, err := varint()
	if err != nil {
		return nil, err
	}
	if srcSize != uint64(len(base)) {
		return nil, fmt.Errorf("delta for a base of %d bytes applied to %d", srcSize, len(base))
	}
	out := make([]byte, 0, dstSize)
	for len(delta) > 0 {
		op := delta[0]
		delta = delta[1:]
		switch {
		case op&0x80 != 0:
			var offset, n uint64
			for i := range 7 {
				if op&(1<<i) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, errors.New("truncated delta copy")
				}
				if i < 4 {
					offset |= uint64(delta[0]) << (8 * i)
				} else {
					n |= uint64(delta[0]) << (8 * (i - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if offset+n > uint64(len(base)) {
				return nil, errors.New("delta copies beyond its base")
			}
			out = append(out, base[offset:offset+n]...)
		case op != 0:
			if int(op) > len(delta) {
				return nil, errors.New("truncated delta insert")
			}
			out = append(out, delta[:op]...)
			delta = delta[op:]
		default:
			return nil, errors.New("reserved delta instruction 0")
		}
	}
	if uint64(len(out)) != dstSize {
		return nil, fmt.Errorf("delta produced %d bytes, want %d", len(out), dstSize)
	}
	return out, nil
}
