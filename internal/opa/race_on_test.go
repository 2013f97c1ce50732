//go:build race

package opa_test

// raceEnabled: the race detector is on. It drops a quarter of what
// sync.Pool is given (a Policy's pooled inputs and store nodes among it):
// allocation counts are not the code's.
const raceEnabled = true
