package etcd

import (
	"google.golang.org/grpc"

	"github.com/permatrix/permatrix/internal/store"
)

// Refused and FewerGuards expose refused and fewerGuards to the package's
// tests.
func (s *Store) Refused(err error, z store.Size) error { return s.refused(err, z) }

func FewerGuards(units [][]byte, n int) [][]byte { return fewerGuards(units, n) }

// SetTestHookCopyLockReleased sets, for one test, what Close runs right
// after it released the copy lock.
func SetTestHookCopyLockReleased(t interface{ Cleanup(func()) }, f func()) {
	testHookCopyLockReleased = f
	t.Cleanup(func() { testHookCopyLockReleased = nil })
}

// SetTestDialOptions sets, for one test, dial options added to the etcd
// client of every store opened meanwhile.
func SetTestDialOptions(t interface{ Cleanup(func()) }, o ...grpc.DialOption) {
	testDialOptions = o
	t.Cleanup(func() { testDialOptions = nil })
}

// ShownKey is how messages and DamagedKeys name a damaged key.
var ShownKey = shownKey
