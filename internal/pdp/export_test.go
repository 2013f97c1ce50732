package pdp

import "context"

// AheadTaken counts the verdicts judged ahead that plans took (prejudge.go).
func AheadTaken(s *Service) uint64 { return s.aheadTaken.Load() }

// JudgedEarlier judges lines ahead now, waits until each is judged, and
// returns their import taking those verdicts, to run later (an import's
// next chunk, judged while the chunk before it was committed).
func JudgedEarlier(s *Service, lines []ImportLine) func(context.Context) (int, uint64, error) {
	changes, err := lineChanges(lines)
	p, perr := s.policy()
	if err == nil {
		err = perr
	}
	if err != nil {
		return func(context.Context) (int, uint64, error) { return 0, 0, err }
	}
	a := s.prejudge(context.Background(), p, changes)
	if a != nil {
		<-a.finished
	}
	return func(ctx context.Context) (int, uint64, error) { return s.writeSome(ctx, true, changes, a) }
}
