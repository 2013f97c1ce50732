package listen

import "time"

// SetFlushGrace sets l's flushGrace, for one test.
func SetFlushGrace(l *Limited, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushGrace = d
}

// Waiting says whether an Accept of l waits for a slot.
func Waiting(l *Limited) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed != nil
}
