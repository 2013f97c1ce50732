package pdp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// Checks of every shape — with and without a context and asserted groups,
// so that some are evaluated over the check inputs a Policy pools and
// refills (opa's checkInputs: no context, no groups) and others not —
// answered by four goroutines at once, from the decision cache and by
// evaluations, while writes land, with the decision log on and masking
// each entry's reasons and context. Every answer is the one topdown (which
// pools nothing) gives over a snapshot of the revision it names; every
// logged entry holds its own check's input and the answer returned for it;
// and masking a logged answer changes no answer served after it.
func TestMixedChecksConcurrentlyWithTheDecisionLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop(ctx)
	logPath := filepath.Join(dir, "decisions.log")
	dl, err := decisionlog.New(ctx, decisionlog.Options{File: logPath, Manager: mgr, Mask: []string{"/result/reasons", "/input/context"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	engine := opa.NewEngine(db)
	dl.Attach(engine)
	svc := pdp.New(db, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), dl)
	stock, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, stock); err != nil {
		t.Fatal(err)
	}
	topdown, err := opa.NewEngine(db, opa.WithEvaluator(opa.Topdown)).Activate(ctx, stock)
	if err != nil {
		t.Fatal(err)
	}
	cat := svc.Catalog()
	systems := cat.IDs()
	users := []string{"u0", "u1", "u2", "u3"}
	groups := []string{"g0", "g1"}

	revs := keepRevisions(t, db)
	defer revs.close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Go(func() { // the writer: grants of every system, memberships
		rng := rand.New(rand.NewPCG(5, 6))
		var ids []string
		for {
			select {
			case <-stop:
				return
			default:
			}
			sys := cat[systems[rng.IntN(len(systems))]]
			var err error
			switch op := rng.IntN(6); {
			case op < 3 || len(ids) == 0:
				a := randomAssignment(rng, sys, users, groups, nil)
				if a, _, err = svc.Assign(ctx, a, ""); err == nil {
					ids = append(ids, a.ID)
				}
			case op < 4:
				i := rng.IntN(len(ids))
				_, err = svc.Unassign(ctx, ids[i], "")
				ids = slices.Delete(ids, i, i+1)
			default:
				m := permatrix.Membership{Group: groups[rng.IntN(len(groups))], User: users[rng.IntN(len(users))]}
				if rng.IntN(2) == 0 {
					_, err = svc.AddMember(ctx, m, "")
				} else {
					_, err = svc.RemoveMember(ctx, m, "")
				}
			}
			if err != nil {
				switch permatrix.ErrorCode(err) {
				case permatrix.EINVALID, permatrix.ENOTFOUND, permatrix.EUNPROCESSABLE, permatrix.ECONFLICT:
					continue // refused: nothing written
				}
				t.Error(err)
				return
			}
			revs.keep()
			writes.Add(1)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		}
	})

	type answered struct {
		input    map[string]any
		decision permatrix.Decision
	}
	var answersMu sync.Mutex
	answers := map[string]answered{}
	var compared, pooledShape, differ atomic.Int64
	for c := range 4 { // the checkers
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 11))
			var last permatrix.Check
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch := randomCheck(rng, cat, systems, users)
				switch rng.IntN(4) {
				case 0:
					ch.Groups = []string{groups[rng.IntN(2)]}
				case 1:
					ch.Groups = []string{"g1", "g0", "g1"}
				}
				if rng.IntN(3) == 0 {
					ch.Context = map[string]any{"from": fmt.Sprintf("x%d", rng.IntN(2)), "note": []any{"a", json.Number("1")}}
				}
				if rng.IntN(3) == 0 && last.System != "" {
					ch = last // asked again: most often answered from the cache
				}
				last = ch
				if len(ch.Groups) == 0 && ch.Context == nil {
					pooledShape.Add(1)
				}
				d, err := svc.Check(ctx, ch)
				if err != nil {
					t.Error(err)
					return
				}
				if !revs.compare(t, ctx, topdown, ch, d, &compared, &differ) {
					return
				}
				answersMu.Lock()
				answers[d.DecisionID] = answered{input: ch.Input(), decision: *d}
				answersMu.Unlock()
			}
		})
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	if err := dl.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := svc.CacheStats()
	t.Logf("%d writes, %d answers compared (%d of the pooled shape, %d from the cache), %d differences", writes.Load(), compared.Load(), pooledShape.Load(), st.Hits, differ.Load())
	if writes.Load() < 20 || st.Hits == 0 || pooledShape.Load() == 0 || pooledShape.Load() == compared.Load() {
		t.Fatalf("the test exercised too little: %d writes, %d cache hits, %d of %d checks of the pooled shape", writes.Load(), st.Hits, pooledShape.Load(), compared.Load())
	}

	// The log: an entry per answer, each its own check's input and the
	// answer returned for it, reasons and context masked.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	logged := 0
	for sc.Scan() {
		var e struct {
			DecisionID string         `json:"decision_id"`
			Input      map[string]any `json:"input"`
			Result     map[string]any `json:"result"`
			Erased     []string       `json:"erased"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("a logged line is not an entry: %v: %.200s", err, sc.Bytes())
		}
		a, ok := answers[e.DecisionID]
		if !ok {
			continue // a check the test stopped before noting (its answer was compared)
		}
		logged++
		wantIn := maps.Clone(a.input)
		delete(wantIn, "context")
		wantOut := map[string]any{"allow": a.decision.Allow, "decision_id": a.decision.DecisionID, "revision": a.decision.Revision, "missing": a.decision.Missing}
		if !sameJSON(t, e.Input, wantIn) || !sameJSON(t, e.Result, wantOut) {
			t.Errorf("decision %s logged\ninput  %v\nresult %v\nwant\ninput  %v\nresult %v", e.DecisionID, e.Input, e.Result, wantIn, wantOut)
		}
		if !slices.Contains(e.Erased, "/result/reasons") {
			t.Errorf("decision %s: reasons not masked (erased %v)", e.DecisionID, e.Erased)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if logged < len(answers)*9/10 {
		t.Fatalf("%d of %d answers found in the decision log", logged, len(answers))
	}
}

// sameJSON compares two values as their JSON encodings say.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var va, vb any
	if err := json.Unmarshal(ja, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}
