package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// medianRevision is the revision a sort of every remembered one puts at
// index len/2 (prune's cut, as it was found), whether counted (revisions
// spanning fewer than the entries: an import's chunks) or sorted (a wide
// span: commits of a unit or two each), at the edges of the two.
func TestMedianRevisionIsTheSortedOnes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		n := 1 + rng.IntN(300)
		span := uint64(1 + rng.IntN(2*n)) // about half the rounds counted, half sorted
		base := rng.Uint64N(1 << 40)
		if round%7 == 0 {
			base = ^uint64(0) - span // revisions up to the largest
		}
		last := make(map[uint64]uint64, n)
		for len(last) < n {
			last[rng.Uint64()] = base + rng.Uint64N(span)
		}
		revs := make([]uint64, 0, n)
		for _, r := range last {
			revs = append(revs, r)
		}
		slices.Sort(revs)
		if got, want := medianRevision(last), revs[n/2]; got != want {
			t.Fatalf("round %d: %d revisions over a span of %d: median %d, sorted %d", round, n, span, got, want)
		}
	}
}

// prune keeps the newer half and forgets the rest: a question about a
// forgotten revision is answered "changed", one after it by the units
// kept; the map stays within twice the limit.
func TestChangesPruneKeepsTheNewerHalf(t *testing.T) {
	c := NewChanges(0, 1000)
	unit := func(rev, i int) []byte { return []byte{byte(rev), byte(i >> 8), byte(i)} }
	for rev := 1; rev <= 10; rev++ {
		units := make([][]byte, 250)
		for i := range units {
			units[i] = unit(rev, i)
		}
		c.Record(uint64(rev), units)
		if len(c.last) > 2*c.limit {
			t.Fatalf("revision %d: %d units remembered, limit %d", rev, len(c.last), c.limit)
		}
	}
	// 250 a revision: pruned at revision 5 (1 250: the cut at 3, revisions
	// 4 and 5 kept) and at 8 (1 250 over 4 to 8: the cut at 6); 7 to 10 kept.
	if c.Floor() != 6 || len(c.last) != 1000 {
		t.Fatalf("floor %d, %d remembered; want 6 and 1000", c.Floor(), len(c.last))
	}
	if !c.ChangedAfter(5, [][]byte{unit(9, 0)}) {
		t.Error("a revision before the floor was answered unchanged")
	}
	if !c.ChangedAfter(6, [][]byte{unit(7, 5)}) || !c.ChangedAfter(9, [][]byte{unit(10, 249)}) {
		t.Error("a unit changed after the floor was forgotten")
	}
	if c.ChangedAfter(7, [][]byte{unit(7, 5)}) || c.ChangedAfter(6, [][]byte{unit(3, 0)}) {
		t.Error("a unit unchanged after the revision asked about was answered changed")
	}
}
