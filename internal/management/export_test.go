package management

import "time"

// SetClock sets the clock the manager's logger reads to let repeated
// warnings and errors through (RepeatEvery).
func SetClock(m *Manager, now func() time.Time) {
	m.log.rep.mu.Lock()
	defer m.log.rep.mu.Unlock()
	m.log.rep.now = now
}

// Remembered is how many messages the manager's logger remembers to
// leave their repeats out.
func Remembered(m *Manager) int {
	m.log.rep.mu.Lock()
	defer m.log.rep.mu.Unlock()
	return len(m.log.rep.last)
}

// MaxRepeats is maxRepeats.
const MaxRepeats = maxRepeats
