package cli

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// TerminalSafe returns one log line as it may be shown on a terminal: a
// step's output is untrusted, and escape sequences could move the cursor,
// rewrite what is on screen, set the window title, or worse (some
// terminals answer queries as if typed). Printable text, tabs and SGR
// sequences (colours and text attributes: ESC [ digits and ';' or ':' m)
// are kept; every other control character, and every other escape
// sequence, is shown escaped, Go style ("\x1b]0;title\x07" becomes
// `\x1b]0;title\x07`). Invalid UTF-8 bytes are shown as \xNN too.
func TerminalSafe(line string) string {
	return escapeControls(line, true)
}

// cellSafe returns a table cell (a commit message, an author, an error)
// as TerminalSafe does, but with every escape sequence, colours too, and
// tabs, which would break the table's columns, escaped: these values are
// written by whoever pushed a commit, and a table has no use for colours.
func cellSafe(s string) string {
	return escapeControls(s, false)
}

// escapeControls shows line's control characters, invalid UTF-8 bytes and
// escape sequences escaped; with keep, it keeps tabs and SGR sequences.
func escapeControls(line string, keep bool) string {
	if safeAlready(line, keep) {
		return line
	}
	var b strings.Builder
	for i := 0; i < len(line); {
		c := line[i]
		if c == 0x1b && keep {
			if n := sgrLen(line[i:]); n > 0 {
				b.WriteString(line[i : i+n])
				i += n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, c)
		case r == '\t' && keep:
			b.WriteByte('\t')
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0: // C1 controls, such as CSI
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(line[i : i+size])
		}
		i += size
	}
	return b.String()
}

// safeAlready reports whether line is printable ASCII only, and tabs
// when tabs is set.
func safeAlready(line string, tabs bool) bool {
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 && (c != '\t' || !tabs)) || c >= 0x7f {
			return false
		}
	}
	return true
}

// sgrLen returns the length of the SGR sequence s starts with (ESC [
// parameters m), or 0 when s does not start with one.
func sgrLen(s string) int {
	if len(s) < 3 || s[0] != 0x1b || s[1] != '[' {
		return 0
	}
	for i := 2; i < len(s) && i < 64; i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == ';', c == ':':
		case c == 'm':
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// copyTerminalSafe copies a log from r to w line by line through
// TerminalSafe.
func copyTerminalSafe(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			text, nl := strings.CutSuffix(line, "\n")
			_, _ = bw.WriteString(TerminalSafe(text))
			if nl {
				_ = bw.WriteByte('\n')
			}
		}
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil {
			_ = bw.Flush()
			return err
		}
	}
}
