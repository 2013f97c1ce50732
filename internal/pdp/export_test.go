package pdp

// AheadTaken counts the verdicts judged ahead that plans took (prejudge.go).
func AheadTaken(s *Service) uint64 { return s.aheadTaken.Load() }

// SwapWaiting says that an activation waits for the writes in flight
// (a writer of s.writers is pending or holds it).
func SwapWaiting(s *Service) bool {
	if s.writers.TryRLock() {
		s.writers.RUnlock()
		return false
	}
	return true
}

// PlansAgain counts the verdicts plans made again took from the plans
// before them (prejudge.go).
func PlansAgain(s *Service) uint64 { return s.aheadAgain.Load() }
