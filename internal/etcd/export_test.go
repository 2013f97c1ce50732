package etcd

import "github.com/permatrix/permatrix/internal/store"

// Refused and FewerGuards expose refused and fewerGuards to the package's
// tests.
func (s *Store) Refused(err error, z store.Size) error { return s.refused(err, z) }

func FewerGuards(units [][]byte, n int) [][]byte { return fewerGuards(units, n) }
