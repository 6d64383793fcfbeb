package logs

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// recorder collects what a LineWriter emits.
type recorder struct {
	lines []string
}

func (r *recorder) emit(line []byte) { r.lines = append(r.lines, string(line)) }

func (r *recorder) joined() string { return strings.Join(r.lines, "") }

// writeChunks writes in to a new LineWriter, split at the given offsets,
// closes it and returns what it emitted.
func writeChunks(t testing.TB, secrets []string, maxLine int, in string, cuts ...int) *recorder {
	t.Helper()
	rec := &recorder{}
	w := NewLineWriter(NewMasker(secrets), maxLine, rec.emit)
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := w.Write([]byte(in[prev:c])); err != nil || n != c-prev {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, c-prev)
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return rec
}

// wantLines splits masked output into lines, each with its line break.
func wantLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

var chunkCases = []struct {
	name    string
	secrets []string
	in      string
}{
	{"plain", []string{"hunter2"}, "login\npassword hunter2 ok\nhunter2\nbye"},
	{"overlapping", []string{"abcd", "cdef", "xx"}, "abcdef\nxxabcdxx\ncdefabcd\n"},
	{"multi-line with short line", []string{"BEGIN\nx\nEND"}, "key: BEGIN\nx\nEND here\nBEGIN\ny\nEND\nBEGIN\nx\n"},
	{"multi-line long lines", []string{"first-line\nsecond-line"}, "a first-line\nsecond-line b\n"},
	{"multi-line prefix of itself", []string{"ab\nab\nab\nc"}, "ab\nab\nab\nab\nc\nab\nab\n"},
	{"crlf", []string{"abc\r\ndef"}, "x abc\r\ndef y\r\nabc\r\n"},
	{"no trailing newline", []string{"tail"}, "head\ntail"},
	{"empty lines", []string{"zz"}, "\n\nzz\n\n"},
}

// TestLineWriterChunks checks that the output does not depend on where the
// writes split the input: every split into two and three chunks, and one
// byte at a time.
func TestLineWriterChunks(t *testing.T) {
	for _, tc := range chunkCases {
		t.Run(tc.name, func(t *testing.T) {
			want := wantLines(refMask(tc.in, tc.secrets))
			check := func(rec *recorder, cuts []int) {
				t.Helper()
				if !slicesEqual(rec.lines, want) {
					t.Fatalf("cuts %v: lines\n %q\nwant\n %q", cuts, rec.lines, want)
				}
			}
			check(writeChunks(t, tc.secrets, 0, tc.in), nil)
			for i := 0; i <= len(tc.in); i++ {
				check(writeChunks(t, tc.secrets, 0, tc.in, i), []int{i})
				for j := i; j <= len(tc.in); j++ {
					check(writeChunks(t, tc.secrets, 0, tc.in, i, j), []int{i, j})
				}
			}
			every := make([]int, len(tc.in))
			for i := range every {
				every[i] = i
			}
			check(writeChunks(t, tc.secrets, 0, tc.in, every...), every)
		})
	}
}

// TestLineWriterLongLines checks that over-long lines are cut into pieces
// of at most maxLine bytes, and that a secret straddling a cut is masked,
// at every position of the secret and every chunking.
func TestLineWriterLongLines(t *testing.T) {
	const secret = "s3cr3t-value"
	for _, maxLine := range []int{1, 5, 8, 16} {
		for off := 0; off < 40; off++ {
			in := strings.Repeat("x", off) + secret + strings.Repeat("y", 30) + "\nshort\n" + strings.Repeat("z", 3*maxLine)
			want := refMask(in, []string{secret})
			for cut := 0; cut <= len(in); cut += 7 {
				rec := writeChunks(t, []string{secret}, maxLine, in, cut)
				if got := rec.joined(); got != want {
					t.Fatalf("maxLine %d, offset %d, cut %d: output\n %q\nwant\n %q", maxLine, off, cut, got, want)
				}
				for _, l := range rec.lines {
					if strings.Contains(l, secret[:2]) {
						t.Fatalf("piece %q holds part of the secret", l)
					}
					if !strings.Contains(l, Redacted) && len(l) > maxLine && !(len(l) == maxLine+1 && strings.HasSuffix(l, "\n")) {
						t.Fatalf("maxLine %d: emitted %d bytes without a secret: %q", maxLine, len(l), l)
					}
				}
				if got := rec.lines[len(rec.lines)-1]; !strings.HasPrefix(got, "z") || strings.HasSuffix(got, "\n") {
					t.Fatalf("last piece %q, want a piece of the unterminated last line", got)
				}
			}
		}
	}
}

// TestLineWriterMaskedRunAcrossPieces checks that a line made only of
// secrets, much longer than maxLine, becomes a single Redacted.
func TestLineWriterMaskedRunAcrossPieces(t *testing.T) {
	in := strings.Repeat("secret", 100) + "\nafter\n"
	rec := writeChunks(t, []string{"secret"}, 10, in, 3, 50, 51, 400)
	if got, want := rec.joined(), Redacted+"\nafter\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

func TestLineWriterUTF8Pieces(t *testing.T) {
	in := strings.Repeat("äöü€", 50) + "\n"
	rec := writeChunks(t, nil, 10, in, 17, 33)
	if rec.joined() != in {
		t.Fatalf("output %q, want the input", rec.joined())
	}
	for _, l := range rec.lines {
		if !utf8.ValidString(l) {
			t.Fatalf("piece %q is not valid UTF-8", l)
		}
		if len(l) > 10 {
			t.Fatalf("piece %q longer than maxLine", l)
		}
	}
	// Invalid UTF-8 is cut at maxLine all the same.
	bin := strings.Repeat("\x80", 25)
	rec = writeChunks(t, nil, 10, bin)
	if got := len(rec.lines); got != 3 || rec.joined() != bin {
		t.Fatalf("invalid UTF-8: %d pieces %q, want 3 pieces holding the input", got, rec.lines)
	}
}

// TestLineWriterLatency checks that a line goes out with the write that
// completes it, and that only a possible multi-line secret holds lines back.
func TestLineWriterLatency(t *testing.T) {
	rec := &recorder{}
	w := NewLineWriter(NewMasker([]string{"single", "BEGIN\nx\nEND"}), 0, rec.emit)
	step := func(in string, want ...string) {
		t.Helper()
		if _, err := w.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(rec.lines, want) {
			t.Fatalf("after writing %q: emitted %q, want %q", in, rec.lines, want)
		}
	}
	step("hello", []string(nil)...)
	step(" single\nwor", "hello ********\n")
	step("ld\n", "hello ********\n", "world\n")
	rec.lines = nil
	step("key BEGIN\n", []string(nil)...)                // could be a secret
	step("x\n", []string(nil)...)                        // still could be
	step("y\n", "key ********\n", "x\n", "y\n")          // was not
	step("BEGIN\nx\nEN", "key ********\n", "x\n", "y\n") // could be
	step("D!\n", "key ********\n", "x\n", "y\n", "********\n", "********\n", "********!\n")
	rec.lines = nil
	step("BEGIN\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"********\n"}; !slicesEqual(rec.lines, want) {
		t.Fatalf("Close emitted %q, want %q", rec.lines, want)
	}
}

func TestLineWriterClose(t *testing.T) {
	rec := &recorder{}
	w := NewLineWriter(nil, 0, rec.emit)
	if _, err := w.Write([]byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if want := []string{"a\n", "b"}; !slicesEqual(rec.lines, want) {
		t.Fatalf("emitted %q, want %q", rec.lines, want)
	}
	if _, err := w.Write([]byte("c\n")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	// Closing without output emits nothing.
	rec = &recorder{}
	if err := NewLineWriter(nil, 0, rec.emit).Close(); err != nil || rec.lines != nil {
		t.Fatalf("empty writer: Close %v, emitted %q", err, rec.lines)
	}
}

// TestLineWriterBoundedMemory writes a 100 MB line without a line break
// (16 MB under the race detector), in chunks of several sizes, with a
// secret cut by chunk and piece boundaries, and checks that the buffer
// never grows past its bound.
func TestLineWriterBoundedMemory(t *testing.T) {
	total := 100 << 20
	if raceEnabled {
		total = 16 << 20
	}
	const secret = "0123456789abcdef-secret"
	chunk := bytes.Repeat([]byte("...."+secret+"......"), 4096)
	var emitted, pieces, masks int
	w := NewLineWriter(NewMasker([]string{secret}), DefaultMaxLine, func(line []byte) {
		pieces++
		emitted += len(line)
		masks += bytes.Count(line, []byte(Redacted))
		if bytes.Contains(line, []byte("secret")) {
			t.Fatalf("piece %d holds the secret", pieces)
		}
	})
	lw := w.(*lineWriter)
	bound := DefaultMaxLine + writeBlock + len(secret)
	written := 0
	for i := 0; written < total; i++ {
		n := len(chunk) - i%1000 // vary the chunk boundaries
		if _, err := w.Write(chunk[:n]); err != nil {
			t.Fatal(err)
		}
		written += n
		if c := cap(lw.buf); c > 2*bound {
			t.Fatalf("buffer capacity %d after %d bytes, want at most %d", c, written, 2*bound)
		}
		if len(lw.buf) > bound {
			t.Fatalf("buffer holds %d bytes after %d bytes, want at most %d", len(lw.buf), written, bound)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := written / DefaultMaxLine; pieces < want {
		t.Fatalf("%d pieces, want at least %d", pieces, want)
	}
	if masks == 0 {
		t.Fatal("no secret was masked")
	}
}

// TestLineWriterManyLines writes a million short lines and checks that the
// buffer stays small.
func TestLineWriterManyLines(t *testing.T) {
	var lines int
	w := NewLineWriter(NewMasker([]string{"secret"}), 0, func([]byte) { lines++ })
	chunk := bytes.Repeat([]byte("a line of output\n"), 1000)
	for range 1000 {
		if _, err := w.Write(chunk[:len(chunk)-3]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(chunk[len(chunk)-3:]); err != nil {
			t.Fatal(err)
		}
	}
	if c := cap(w.(*lineWriter).buf); c > 2*len(chunk) {
		t.Fatalf("buffer capacity %d, want at most %d", c, 2*len(chunk))
	}
	_ = w.Close()
	if lines != 1_000_000 {
		t.Fatalf("%d lines, want 1000000", lines)
	}
}

// TestLineWriterRandom compares the writer with the reference on random
// inputs and random chunkings, with single- and multi-line secrets.
func TestLineWriterRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		secrets := randomSecrets(r, 1+r.IntN(4), "abc\n")
		in := randomText(r, secrets, "abcd\n", 60)
		var cuts []int
		for c := 0; c < len(in); c += 1 + r.IntN(8) {
			cuts = append(cuts, c)
		}
		maxLine := 1 + r.IntN(12)
		rec := writeChunks(t, secrets, maxLine, in, cuts...)
		if got, want := rec.joined(), refMask(in, secrets); got != want {
			t.Fatalf("secrets %q, maxLine %d, cuts %v, input %q:\n got  %q\n want %q", secrets, maxLine, cuts, in, got, want)
		}
	}
}

func FuzzLineWriter(f *testing.F) {
	f.Add([]byte("pw=\x01\n\x02x\x01\x01\n"), "hunter2", "-----BEGIN\nK\n-----END", uint8(0), uint8(7))
	f.Add([]byte("\x01\x02\x01"), "abcd", "cdef", uint8(3), uint8(1))
	f.Add([]byte("x\x02y\n"), "ab\n\ncd", "a\nb", uint8(255), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 string, maxLine, chunk uint8) {
		if strings.Contains(s1+s2, "*") {
			t.Skip("a secret made of mask characters can appear in the mask")
		}
		if len(data) > 2048 || len(s1) > 64 || len(s2) > 64 {
			t.Skip("the reference mask is quadratic; small inputs find the same bugs")
		}
		// Bytes 1 and 2 in data stand for the secrets, so that the fuzzer
		// places them easily.
		in := strings.NewReplacer("\x01", s1, "\x02", s2).Replace(string(data))
		secrets := []string{s1, s2}
		var cuts []int
		step := int(chunk%16) + 1
		for c := step; c < len(in); c += step {
			cuts = append(cuts, c)
		}
		rec := writeChunks(t, secrets, int(maxLine), in, cuts...)
		got := rec.joined()
		if want := refMask(in, secrets); got != want {
			t.Fatalf("output\n %q\nwant\n %q", got, want)
		}
		for _, p := range refPatterns(secrets) {
			if strings.Contains(got, p) {
				t.Fatalf("output %q contains the secret %q", got, p)
			}
		}
		for i, l := range rec.lines[:max(len(rec.lines)-1, 0)] {
			if strings.Contains(l[:len(l)-1], "\n") {
				t.Fatalf("line %d %q holds a line break before its end", i, l)
			}
		}
	})
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLineWriterSmallWrites writes a line of several MiB one small chunk
// at a time, with a long secret, which must take linear time.
func TestLineWriterSmallWrites(t *testing.T) {
	secret := strings.Repeat("k", 4096)
	var emitted int
	w := NewLineWriter(NewMasker([]string{secret}), 1<<20, func(line []byte) { emitted += len(line) })
	chunk := []byte("0123456")
	start := time.Now()
	const total = 3 << 20
	for n := 0; n < total; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	if emitted < total {
		t.Fatalf("emitted %d bytes, want %d", emitted, total)
	}
	// A guard: linear time is milliseconds; quadratic time, rescanning the
	// line on each of 450,000 writes, is hours.
	if d := time.Since(start); d > 2*time.Minute {
		t.Fatalf("took %v: small writes to a long line do not take linear time", d)
	}
}

// TestTruncatingLineWriter feeds a 45 MB line between short ones: it comes
// out once, cut to the limit with the marker, and the lines around it are
// whole. A secret at the cut is masked, and one in the discarded part
// never appears.
func TestTruncatingLineWriter(t *testing.T) {
	const maxLine = 4096
	m := NewMasker([]string{"hunter2"})
	var got []string
	w := NewTruncatingLineWriter(m, maxLine, func(line []byte) { got = append(got, string(line)) })
	head := strings.Repeat("a", maxLine-len(TruncatedMarker)-3) + "hunter2"
	mustWrite := func(s string) {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("before\n" + head)
	chunk := strings.Repeat("b", 1<<20) + "hunter2"
	for range 45 {
		mustWrite(chunk)
	}
	mustWrite("\nafter\nlast, unterminated " + strings.Repeat("c", 2*maxLine))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 4", len(got))
	}
	want := head[:len(head)-7] + Redacted + TruncatedMarker + "\n"
	if got[0] != "before\n" || got[1] != want || got[2] != "after\n" {
		t.Errorf("lines = %.80q…, line 2 ends %q", got, got[1][len(got[1])-100:])
	}
	if !strings.HasSuffix(got[3], TruncatedMarker+"\n") || len(got[3]) > maxLine+1 {
		t.Errorf("the unterminated last line is %d bytes, want it truncated to %d: %.80q", len(got[3]), maxLine, got[3])
	}
	for _, l := range got {
		if strings.Contains(l, "hunter2") || strings.Contains(l, "bb") {
			t.Errorf("a discarded part or a secret leaked: %.100q", l)
		}
	}
}
