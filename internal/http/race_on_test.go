//go:build race

package http_test

// raceEnabled: the race detector is on. It drops a quarter of what
// sync.Pool is given (the decoder's pooled state among it): allocation
// counts are not the code's.
const raceEnabled = true
