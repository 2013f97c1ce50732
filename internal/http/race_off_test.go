//go:build !race

package http_test

// raceEnabled: the race detector is off (race_on_test.go).
const raceEnabled = false
