//go:build !race

package vm_test

// raceEnabled: the race detector is off (race_on_test.go).
const raceEnabled = false
