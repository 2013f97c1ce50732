package store

import "testing"

// BenchmarkChangesRecord records an import's chunks: 40 000 units a
// revision, into the default limit (pruned every few chunks).
func BenchmarkChangesRecord(b *testing.B) {
	const perChunk, chunks = 40_000, 16
	units := make([][][]byte, chunks) // a cycle of chunks: 640 000 units
	for k := range units {
		units[k] = make([][]byte, perChunk)
		for i := range units[k] {
			units[k][i] = []byte{byte(k), byte(i >> 16), byte(i >> 8), byte(i)}
		}
	}
	c := NewChanges(0, 0)
	rev := uint64(0)
	for b.Loop() {
		rev++
		c.Record(rev, units[rev%chunks])
	}
}
