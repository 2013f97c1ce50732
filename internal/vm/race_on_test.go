//go:build race

package vm_test

// raceEnabled: the race detector is on. It drops a quarter of what
// sync.Pool is given (the pooled evaluations among it): allocation counts
// are not the code's.
const raceEnabled = true
