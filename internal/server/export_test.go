package server

import "time"

// SetLogPoll sets how often s's log streams look for lines stored through
// another server. A test that sets it to an hour sees a live line only if
// it was pushed to the stream, not found by the poll.
func SetLogPoll(s *Server, d time.Duration) { s.logPoll.Store(int64(d)) }
