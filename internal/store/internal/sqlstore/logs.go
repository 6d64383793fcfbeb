package sqlstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/ferryci/ferry/internal/store"
)

const (
	// chunkSize bounds the encoded size of a log chunk; a single line that
	// is larger gets a chunk of its own.
	chunkSize = 64 << 10
	// pageChunks is how many chunks Lines reads per query, which bounds
	// its memory to about pageChunks*chunkSize.
	pageChunks = 8
)

type logs struct{ *base }

// A chunk's data is its lines, each encoded as
//
//	uvarint(len(text)) varint(unix milliseconds, or 0 for no time) text
//
// with sequence numbers first_seq, first_seq+1, ... last_seq.

func appendLine(b []byte, l store.LogLine) []byte {
	var ms int64
	if !l.Time.IsZero() {
		ms = l.Time.UnixMilli()
	}
	b = binary.AppendUvarint(b, uint64(len(l.Text)))
	b = binary.AppendVarint(b, ms)
	return append(b, l.Text...)
}

func decodeChunk(data []byte, firstSeq int64, yield func(store.LogLine) bool) error {
	seq := firstSeq
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 {
			return errors.New("corrupt log chunk: bad length")
		}
		data = data[k:]
		ms, k := binary.Varint(data)
		if k <= 0 {
			return errors.New("corrupt log chunk: bad time")
		}
		data = data[k:]
		if uint64(len(data)) < n {
			return errors.New("corrupt log chunk: short line")
		}
		l := store.LogLine{Seq: seq, Text: string(data[:n])}
		if ms != 0 {
			l.Time = time.UnixMilli(ms).UTC()
		}
		data = data[n:]
		seq++
		if !yield(l) {
			return nil
		}
	}
	return nil
}

type chunk struct {
	first, last int64
	lines       int64
	bytes       int64
	data        []byte
}

// chunks encodes lines, which are sorted by Seq without duplicates, into
// chunks of contiguous sequence numbers and bounded size.
func chunks(lines []store.LogLine) []chunk {
	var out []chunk
	var c *chunk
	for _, l := range lines {
		enc := len(l.Text) + 2*binary.MaxVarintLen64
		if c == nil || l.Seq != c.last+1 || len(c.data)+enc > chunkSize {
			out = append(out, chunk{first: l.Seq, last: l.Seq - 1})
			c = &out[len(out)-1]
		}
		c.data = appendLine(c.data, l)
		c.last = l.Seq
		c.lines++
		c.bytes += int64(len(l.Text))
	}
	return out
}

func (s *logs) Append(ctx context.Context, stepID int64, lines ...store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	sorted := slices.IsSortedFunc(lines, func(a, b store.LogLine) int { return cmpSeq(a.Seq, b.Seq) })
	if !sorted {
		lines = slices.Clone(lines)
		slices.SortStableFunc(lines, func(a, b store.LogLine) int { return cmpSeq(a.Seq, b.Seq) })
	}
	if s.d.WritableCTE {
		if c := chunks(lines); len(c) == 1 && s.appendOnce(ctx, stepID, &c[0]) {
			return nil
		}
	}
	err := s.db.Tx(ctx, func(q Querier) error {
		var one int
		if err := q.QueryRow(ctx, `SELECT 1 FROM steps WHERE id = $1`, stepID).Scan(&one); err != nil {
			return err
		}
		_, err := q.Exec(ctx,
			`INSERT INTO logs (step_id, last_seq, lines, bytes) VALUES ($1, -1, 0, 0) ON CONFLICT (step_id) DO NOTHING`,
			stepID)
		if err != nil {
			return err
		}
		// Locking the log's row (on PostgreSQL) serialises appends to one
		// step, so a batch and its re-sent copy cannot both be stored.
		var lastSeq, nLines, nBytes int64
		err = q.QueryRow(ctx, `SELECT last_seq, lines, bytes FROM logs WHERE step_id = $1 `+s.d.ForUpdate, stepID).
			Scan(&lastSeq, &nLines, &nBytes)
		if err != nil {
			return err
		}
		fresh := make([]store.LogLine, 0, len(lines))
		for _, l := range lines {
			if l.Seq > lastSeq {
				fresh = append(fresh, l)
				lastSeq = l.Seq
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		for _, c := range chunks(fresh) {
			_, err := q.Exec(ctx, `INSERT INTO log_chunks (step_id, last_seq, first_seq, data) VALUES ($1, $2, $3, $4)`,
				stepID, c.last, c.first, c.data)
			if err != nil {
				return fmt.Errorf("inserting chunk %d-%d: %w", c.first, c.last, err)
			}
			nLines += c.lines
			nBytes += c.bytes
		}
		_, err = q.Exec(ctx, `UPDATE logs SET last_seq = $1, lines = $2, bytes = $3 WHERE step_id = $4`,
			lastSeq, nLines, nBytes, stepID)
		return err
	})
	return s.wrap(err, "appending %d lines to the log of step %d", len(lines), stepID)
}

// appendOnce stores c in one statement when it simply continues the log
// (every line is newer than the last stored one), which is how an agent's
// batches arrive, and reports whether it did. Otherwise (a re-sent batch
// that overlaps, a step that does not exist, any error) it stores nothing,
// and Append takes the general path, which sorts each case out. The
// conditional upsert locks the log's row, so a batch and its re-sent copy
// cannot both be stored.
func (s *logs) appendOnce(ctx context.Context, stepID int64, c *chunk) bool {
	n, err := s.db.Writer().Exec(ctx,
		`WITH l AS (
			INSERT INTO logs (step_id, last_seq, lines, bytes) VALUES ($1, $2, $4, $5)
			ON CONFLICT (step_id) DO UPDATE SET last_seq = EXCLUDED.last_seq,
				lines = logs.lines + EXCLUDED.lines, bytes = logs.bytes + EXCLUDED.bytes
			WHERE logs.last_seq < $3
			RETURNING step_id)
		 INSERT INTO log_chunks (step_id, last_seq, first_seq, data) SELECT step_id, $2, $3, $6 FROM l`,
		stepID, c.last, c.first, c.lines, c.bytes, c.data)
	return err == nil && n == 1
}

func (s *logs) Copy(ctx context.Context, from, to int64) error {
	err := s.db.Tx(ctx, func(q Querier) error {
		var one int
		if err := q.QueryRow(ctx, `SELECT 1 FROM steps WHERE id = $1`, to).Scan(&one); err != nil {
			return err
		}
		n, err := q.Exec(ctx,
			`INSERT INTO logs (step_id, last_seq, lines, bytes)
			 SELECT $2, last_seq, lines, bytes FROM logs WHERE step_id = $1
			 ON CONFLICT (step_id) DO NOTHING`, from, to)
		if err != nil || n == 0 {
			return err
		}
		_, err = q.Exec(ctx,
			`INSERT INTO log_chunks (step_id, last_seq, first_seq, data)
			 SELECT $2, last_seq, first_seq, data FROM log_chunks WHERE step_id = $1`, from, to)
		return err
	})
	return s.wrap(err, "copying the log of step %d to step %d", from, to)
}

func cmpSeq(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *logs) Lines(ctx context.Context, stepID, from int64) iter.Seq2[store.LogLine, error] {
	return func(yield func(store.LogLine, error) bool) {
		for {
			page, err := s.page(ctx, stepID, from)
			if err != nil {
				yield(store.LogLine{}, s.wrap(err, "reading the log of step %d", stepID))
				return
			}
			if len(page) == 0 {
				return
			}
			stopped := false
			for _, c := range page {
				err := decodeChunk(c.data, c.first, func(l store.LogLine) bool {
					if l.Seq < from {
						return true
					}
					if !yield(l, nil) {
						stopped = true
						return false
					}
					return true
				})
				if stopped {
					return
				}
				if err != nil {
					yield(store.LogLine{}, fmt.Errorf("reading the log of step %d: %w", stepID, err))
					return
				}
			}
			from = page[len(page)-1].last + 1
		}
	}
}

// page reads the next chunks that hold lines from seq on.
func (s *logs) page(ctx context.Context, stepID, from int64) ([]chunk, error) {
	rows, err := s.db.Reader().Query(ctx,
		fmt.Sprintf(`SELECT first_seq, last_seq, data FROM log_chunks WHERE step_id = $1 AND last_seq >= $2
			ORDER BY last_seq LIMIT %d`, pageChunks), stepID, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []chunk
	for rows.Next() {
		var c chunk
		if err := rows.Scan(&c.first, &c.last, &c.data); err != nil {
			return nil, err
		}
		page = append(page, c)
	}
	return page, rows.Err()
}

func (s *logs) Tail(ctx context.Context, stepID, n int64) iter.Seq2[store.LogLine, error] {
	return func(yield func(store.LogLine, error) bool) {
		info, err := s.Info(ctx, stepID)
		if err != nil {
			yield(store.LogLine{}, err)
			return
		}
		for l, err := range s.Lines(ctx, stepID, max(0, info.LastSeq-n+1)) {
			if !yield(l, err) {
				return
			}
		}
	}
}

func (s *logs) Info(ctx context.Context, stepID int64) (store.LogInfo, error) {
	var info store.LogInfo
	err := s.db.Reader().QueryRow(ctx, `SELECT last_seq, lines, bytes FROM logs WHERE step_id = $1`, stepID).
		Scan(&info.LastSeq, &info.Lines, &info.Bytes)
	if isNotFound(err) {
		return store.LogInfo{LastSeq: -1}, nil
	}
	return info, s.wrap(err, "reading the log size of step %d", stepID)
}
