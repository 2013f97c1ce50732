package pdp

// AheadTaken counts the verdicts judged ahead that plans took (prejudge.go).
func AheadTaken(s *Service) uint64 { return s.aheadTaken.Load() }
