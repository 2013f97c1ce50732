package identity

import "time"

// SetKeyClock makes id's key set read the time from now when it decides
// whether an unknown kid may refetch (RefreshInterval): a test then moves
// time on instead of sleeping through the interval and hoping its own
// work fits in the next one.
func SetKeyClock(id *Identity, now func() time.Time) {
	switch k := id.jwt.keys.(type) {
	case *urlKeys:
		k.mu.Lock()
		k.now = now
		k.mu.Unlock()
	case *fileKeys:
		k.mu.Lock()
		k.now = now
		k.mu.Unlock()
	}
}
