package listen

import "time"

// SetFlushGrace sets l's flushGrace, for one test.
func SetFlushGrace(l *Limited, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushGrace = d
}
