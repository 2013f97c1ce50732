package store

import "time"

// SetRetryBudget makes Update's retry budget d until the test ends.
func SetRetryBudget(t interface{ Cleanup(func()) }, d time.Duration) {
	retryBudget = d
	t.Cleanup(func() { retryBudget = RetryBudget })
}
