package server

import (
	"net/http"
	"strconv"
	"sync"
)

// Limits on the long-lived streams (a step's log, a build's events): each
// holds a goroutine, a subscription and a connection for as long as the
// client keeps it open, so one caller cannot hold an unbounded number.
const (
	// maxStreamsPerCaller bounds the open streams of one user or token:
	// enough for dozens of build pages open at once.
	maxStreamsPerCaller = 64
	// maxStreams bounds the open streams of the whole server.
	maxStreams = 4096
	// streamRetryAfter is the Retry-After of a refused stream, in seconds.
	streamRetryAfter = 5
)

// streamLimiter counts the open streams, by caller and in all.
type streamLimiter struct {
	mu       sync.Mutex
	total    int
	byCaller map[string]int
}

// acquire counts one more stream for r's caller, or answers 429 when the
// caller or the server has as many open as allowed. The returned func
// ends the stream's count.
func (s *Server) acquireStream(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	key := "anonymous"
	if p := caller(r); p != nil {
		key = p.name()
		if p.user != nil {
			key = "user:" + strconv.FormatInt(p.user.ID, 10)
		}
	}
	l := &s.streams
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byCaller[key] >= maxStreamsPerCaller:
		w.Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
		return nil, errorf(http.StatusTooManyRequests, "",
			"you have %d log or event streams open, the most one caller may; close some pages or clients and try again", maxStreamsPerCaller)
	case l.total >= maxStreams:
		w.Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
		return nil, errorf(http.StatusTooManyRequests, "",
			"the server has %d log or event streams open, the most it allows; try again shortly", maxStreams)
	}
	if l.byCaller == nil {
		l.byCaller = make(map[string]int)
	}
	l.byCaller[key]++
	l.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.byCaller[key]--; l.byCaller[key] <= 0 {
				delete(l.byCaller, key)
			}
		})
	}, nil
}
