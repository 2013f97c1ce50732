package fleet_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// TestAnswersAfterAcknowledgedWrites: a write acknowledged by one sidecar,
// then at once a write through another whose answer rests on it. Writes
// plan on the replica at hand (which may lag), so these check that an
// answer no commit checks — a refusal, "already there" — is never given on
// a state older than the one acknowledged: the grant that makes alice an
// admin lets her remove bob's role at once elsewhere (no 403); an
// assignment just made can be removed elsewhere at once (no 404); made
// again elsewhere it is found, at a revision not before its own.
func TestAnswersAfterAcknowledgedWrites(t *testing.T) {
	f := startFleet(t, 3)
	const suite = "uipath-task-mining-suite"
	post := func(i int, body string) written {
		t.Helper()
		code, raw := call(f.sidecar(i), "POST", "/v1/assignments", body, nil)
		if code != 201 && code != 200 {
			t.Fatalf("assign at %d: %d %s", i, code, raw)
		}
		var w written
		json.Unmarshal(raw, &w)
		return w
	}
	for round := range 15 {
		alice, bob, carol := fmt.Sprintf("alice%d", round), fmt.Sprintf("bob%d", round), fmt.Sprintf("carol%d", round)
		at, other := round%3, (round+1)%3
		b := post(at, grant(bob, suite, "admin"))
		a := post(at, grant(alice, suite, "admin"))
		code, raw := call(f.sidecar(other), "DELETE", "/v1/assignments/"+b.ID, fmt.Sprintf(`{"actor":%q}`, alice), nil)
		if code != 200 {
			t.Fatalf("round %d: alice (admin at revision %d through sidecar %d) removing bob's role through sidecar %d: %d %s", round, a.Revision, at, other, code, raw)
		}
		c := post(at, grant(carol, suite, "admin"))
		again := post(other, grant(carol, suite, "admin"))
		if again.ID != c.ID || again.Revision < c.Revision {
			t.Fatalf("round %d: carol's role made at %d (%s), made again elsewhere: %s at %d", round, c.Revision, c.ID, again.ID, again.Revision)
		}
		code, raw = call(f.sidecar(other), "DELETE", "/v1/assignments/"+c.ID, "", nil)
		if code != 200 {
			t.Fatalf("round %d: removing carol's role (made at %d through %d) through %d: %d %s", round, c.Revision, at, other, code, raw)
		}
	}
}

// TestDelegationRaceOneSidecar: the delegation race (TestConcurrentDelegationRace)
// through one sidecar whose commit queue other writes keep busy, so that
// the two removals can be taken into one group transaction: never may
// both commit.
func TestDelegationRaceOneSidecar(t *testing.T) {
	f := startFleet(t, 1)
	const suite = "uipath-task-mining-suite"
	p := f.sidecar(0)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	var noise atomic.Int64
	for w := range 6 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if code, raw := call(p, "POST", "/v1/assignments", grant(fmt.Sprintf("noise%d-%d", w, n), suite, "admin"), nil); code != 201 {
					t.Errorf("noise: %d %s", code, raw)
					return
				}
				noise.Add(1)
			}
		}()
	}
	defer func() { close(stop); bg.Wait() }()
	for round := range 30 {
		if both, raws := mutualRevocation(t, round, suite, p, func(int) *harness.Process { return p }); both {
			t.Errorf("round %d: both delegated removals committed: %s / %s", round, raws[0], raws[1])
		}
	}
	t.Logf("%d noise writes alongside", noise.Load())
}
