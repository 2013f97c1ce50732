package pdp

import "context"

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

// HeldChunk starts the write of lines as an import's chunk whose chunk
// before is still in its write, and returns once the chunk's first plan is
// made, its verdicts judged ahead and taken (heldChunk): release lets it
// commit, its outcome on result.
func HeldChunk(ctx context.Context, s *Service, lines []ImportLine) (release func(), result <-chan error) {
	return heldChunk(ctx, s, lines)
}
