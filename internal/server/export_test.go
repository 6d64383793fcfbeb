package server

import (
	"time"

	"github.com/ferryci/ferry/internal/store"
)

// SetLogPoll sets how often s's log streams look for lines stored through
// another server. A test that sets it to an hour sees a live line only if
// it was pushed to the stream, not found by the poll.
func SetLogPoll(s *Server, d time.Duration) { s.logPoll.Store(int64(d)) }

// SkewPasswordClock moves the clock of s's sign-in limiter and of the
// expiry of the tokens password sign-ins answer by d, so that a test can
// step past the limiter's window or a session's end without waiting.
func SkewPasswordClock(s *Server, d time.Duration) { s.passwords.skew.Store(int64(d)) }

// Store returns s's store, for tests that look at what the API wrote.
func (s *Server) Store() *store.Store { return s.store }
