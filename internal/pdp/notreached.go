package pdp

import (
	"errors"
	"sync"
	"time"

	"github.com/permatrix/permatrix"
)

// NotReachedError is a consistency token the store did not reach within
// the wait (EUNAVAILABLE, 503). The token is the client's choice — on
// forward-auth and ext_authz the end user's, from its own request's
// X-Permatrix-Min-Revision — so the answer is that client's, not a fault
// of the server: the transports do not log it as an error (NotReached),
// and the Service notes it in a warning at most once per
// notReachedEvery, with how many answers it stands for.
type NotReachedError struct{ err *permatrix.Error }

func (e *NotReachedError) Error() string { return e.err.Error() }

// Unwrap gives the *permatrix.Error (EUNAVAILABLE) it answers as.
func (e *NotReachedError) Unwrap() error { return e.err }

// NotReached says whether err is a consistency token not reached.
func NotReached(err error) bool {
	var e *NotReachedError
	return errors.As(err, &e)
}

// notReachedEvery is how often at most the warning of unreached tokens is
// logged.
const notReachedEvery = 10 * time.Second

// notReachedNotes counts unreached tokens between two warnings.
type notReachedNotes struct {
	mu    sync.Mutex
	last  time.Time // the last warning; zero: none yet
	count int       // tokens not reached since the last warning
}

// notReached makes the error of a token not reached and notes it: the
// first one is logged at once, later ones with the first after
// notReachedEvery, counted.
func (s *Service) notReached(err *permatrix.Error) error {
	n := &s.notReachedNotes
	n.mu.Lock()
	n.count++
	now := time.Now()
	if !n.last.IsZero() && now.Sub(n.last) < notReachedEvery {
		n.mu.Unlock()
		return &NotReachedError{err}
	}
	count := n.count
	n.count, n.last = 0, now
	n.mu.Unlock()
	s.log.Warn("consistency tokens not reached: answered 503 (logged at most every 10s)",
		"answers", count, "last", err.Message)
	return &NotReachedError{err}
}
