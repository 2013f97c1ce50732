package store

import "testing"

// TestOverlayScanStopsAtErrStop: once fn returns ErrStop, an Overlay's
// Scan calls it no more — not with the pending keys after the base key it
// stopped at (RoleUses counts past its max through a Tx otherwise).
func TestOverlayScanStopsAtErrStop(t *testing.T) {
	base := NewOverlay(Empty(1))
	base.Put(Key("i", "role_uses", "sys", "r", "1"), nil)
	base.Put(Key("i", "role_uses", "sys", "r", "2"), nil)
	top := NewOverlay(base)
	top.Put(Key("i", "role_uses", "sys", "r", "3"), nil)
	calls := 0
	err := top.Scan(Prefix("i", "role_uses", "sys", "r"), nil, func(_, _ []byte) error {
		calls++
		return ErrStop
	})
	if err != nil || calls != 1 {
		t.Fatalf("fn called %d times after ErrStop (err %v), want once", calls, err)
	}
	if n, err := RoleUses(top, "sys", "r", 1); err != nil || n != 1 {
		t.Fatalf("RoleUses(max 1) = %d, %v; want 1", n, err)
	}
}
