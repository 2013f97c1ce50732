//go:build !race

package opa_test

// raceEnabled: the race detector is off (race_on_test.go).
const raceEnabled = false
