package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// changesModel is every change recorded: unit → the revisions that
// changed it, the truth Changes answers for conservatively.
type changesModel map[string][]uint64

func (m changesModel) changedAfter(rev uint64, u string) bool {
	for _, r := range m[u] {
		if r > rev {
			return true
		}
	}
	return false
}

// Changes never answers "unchanged" for a unit that changed after the
// revision asked about, whatever the prune dropped: at its limits — limit
// 1 and 2, one revision holding every entry (an import's commit), the
// revisions spanning more values than entries (sorted) and fewer
// (counted), a commit many times the limit — every unit and revision from
// 0 to the newest is asked after each commit, and a revision below the
// floor is answered "changed" for every unit. And it stays bounded: at
// most twice the limit after a commit within the limit. Tried hard,
// nothing found: passes on main.
func TestChangesPruneNeverForgetsAChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		limit := []int{1, 2, 3, 7, 64}[round%5]
		c := NewChanges(0, limit)
		truth := changesModel{}
		universe := 1 + rng.IntN(4*limit+3)
		rev := uint64(0)
		for commit := range 40 {
			switch rng.IntN(4) {
			case 0:
				rev += uint64(1 + rng.IntN(1000)) // a wide span: sorted
			default:
				rev++
			}
			n := 1 + rng.IntN(3)
			if commit%9 == 0 {
				n = universe // one revision holding every unit
			}
			units := make([][]byte, n)
			for i := range units {
				u := fmt.Sprint("u", rng.IntN(universe))
				units[i] = []byte(u)
				truth[u] = append(truth[u], rev)
			}
			c.Record(rev, units)
			if n <= limit && len(c.last) > 2*limit {
				t.Fatalf("round %d: %d remembered, limit %d", round, len(c.last), limit)
			}
			floor := c.Floor()
			for u := range universe {
				name := fmt.Sprint("u", u)
				for r := uint64(0); r <= rev; r += 1 + uint64(rng.IntN(40)) {
					got := c.ChangedAfter(r, [][]byte{[]byte(name)})
					if !got && truth.changedAfter(r, name) {
						t.Fatalf("round %d (limit %d): %s changed after %d (at %v), answered unchanged (floor %d)", round, limit, name, r, truth[name], floor)
					}
					if !got && r < floor {
						t.Fatalf("round %d: revision %d below the floor %d answered unchanged", round, r, floor)
					}
				}
				if c.ChangedAfter(rev, [][]byte{[]byte(name)}) {
					t.Fatalf("round %d: %s answered changed after the newest revision %d", round, name, rev)
				}
			}
		}
	}
}

// ChangedAfter while commits prune: a change recorded before a reader
// asks (published after its Record returned) is never answered
// "unchanged", by readers on other goroutines, limit 1 and 8 (a prune at
// nearly every commit). Run under -race too. Tried hard, nothing found:
// passes on main.
func TestChangesPruneConcurrentReaders(t *testing.T) {
	for _, limit := range []int{1, 8} {
		c := NewChanges(0, limit)
		const units = 16
		// lastChange[u] is the newest revision recorded for unit u, set
		// after Record returns.
		var lastChange [units]atomic.Uint64
		var done atomic.Bool
		var wg sync.WaitGroup
		var failed atomic.Value
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 9))
				for !done.Load() {
					u := rng.IntN(units)
					last := lastChange[u].Load()
					if last == 0 {
						continue
					}
					r := last - 1 - rng.Uint64N(min(last, 5))
					if !c.ChangedAfter(r, [][]byte{{byte(u)}}) {
						failed.Store(fmt.Sprintf("unit %d changed at %d answered unchanged after %d (floor %d)", u, last, r, c.Floor()))
					}
				}
			}()
		}
		rng := rand.New(rand.NewPCG(7, 8))
		for rev := uint64(1); rev <= 20000; rev++ {
			n := 1 + rng.IntN(3)
			if rev%100 == 0 {
				n = units
			}
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = []byte{byte(rng.IntN(units))}
			}
			c.Record(rev, batch)
			for _, u := range batch {
				lastChange[u[0]].Store(rev)
			}
		}
		done.Store(true)
		wg.Wait()
		if f := failed.Load(); f != nil {
			t.Fatalf("limit %d: %v", limit, f)
		}
	}
}
