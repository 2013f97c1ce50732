package fleet_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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
	both := 0
	for round := range 30 {
		alice, bob := fmt.Sprintf("alice%d", round), fmt.Sprintf("bob%d", round)
		ids := map[string]string{}
		for _, u := range []string{alice, bob} {
			code, raw := call(p, "POST", "/v1/assignments", grant(u, suite, "admin"), nil)
			if code != 201 {
				t.Fatalf("setup: %d %s", code, raw)
			}
			var w written
			json.Unmarshal(raw, &w)
			ids[u] = w.ID
		}
		var wg sync.WaitGroup
		codes, raws := make([]int, 2), make([][]byte, 2)
		start := make(chan struct{})
		for i, pair := range [][2]string{{alice, bob}, {bob, alice}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes[i], raws[i] = call(p, "DELETE", "/v1/assignments/"+ids[pair[1]], fmt.Sprintf(`{"actor":%q}`, pair[0]), nil)
			}()
		}
		close(start)
		wg.Wait()
		if codes[0] == 200 && codes[1] == 200 {
			both++
			t.Errorf("round %d: both delegated removals committed: %s / %s", round, raws[0], raws[1])
		}
		for i, c := range codes {
			if c != 200 && c != 403 {
				t.Fatalf("round %d: removal %d: %d %s", round, i, c, raws[i])
			}
		}
	}
	t.Logf("%d noise writes alongside", noise.Load())
}
