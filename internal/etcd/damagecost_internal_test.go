package etcd

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestDamageCostPerApply: an apply that damages one more key costs about
// as much with thousands damaged as with a few hundred. A writer planting
// a key a revision kept every sidecar's apply loop copying and scanning
// all the damaged keys (quadratic in their number: 70 s for 20 000).
// Bytes allocated count what is copied, whatever the load.
func TestDamageCostPerApply(t *testing.T) {
	perApply := func(n int) uint64 {
		s := &Store{prefix: "/p/", dataPrefix: []byte("/p/k/"), idSeqKey: "/p/m/idseq", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		ops := make([]store.Op, n)
		for i := range ops {
			ops[i] = store.Op{Key: []byte(fmt.Sprintf("planted/%08d", i)), Value: []byte("x")}
		}
		applyDamage(s, 1, ops)
		var before, after runtime.MemStats
		const applies = 16
		runtime.ReadMemStats(&before)
		for i := range applies {
			applyDamage(s, uint64(2+i), []store.Op{{Key: []byte(fmt.Sprintf("planted/%08d", n+i)), Value: []byte("x")}})
		}
		runtime.ReadMemStats(&after)
		if names, got := s.DamagedKeys(2); got != n+applies || len(names) != 2 || names[0] != "/p/k/planted/00000000" || names[1] != "/p/k/planted/00000001" {
			t.Fatalf("DamagedKeys(2): %q of %d, want the 2 least of %d", names, got, n+applies)
		}
		return (after.TotalAlloc - before.TotalAlloc) / applies
	}
	small, large := perApply(256), perApply(16384)
	t.Logf("bytes allocated by an apply damaging one more key: %d with 256 damaged, %d with 16 384", small, large)
	if large > 2*small {
		t.Errorf("an apply damaging one key allocates %d bytes with 16 384 damaged, %d with 256: the cost grows with the damaged keys", large, small)
	}
}

// applyDamage is what the watch does around an apply of ops at rev.
func applyDamage(s *Store, rev uint64, ops []store.Op) {
	e := editDamage(s.damage.Load())
	s.damageAfter(e, ops)
	s.publishDamage(e, rev, true, false)
	s.publishDamage(e, rev, false, false)
}
