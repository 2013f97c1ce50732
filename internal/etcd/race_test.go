package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/internal/store/storetest"
)

// Races against group commit (commit.go) and writes planned on a lagging
// replica (store.Update): two stores on one prefix are two sidecars; many
// writers at once fill the commit queue, so that commits share
// transactions. Each test states an invariant the write rules keep one
// write after another and checks that concurrency never breaks it.

// pair opens two sidecars on one new prefix, with options o (raised when
// zero).
func pair(t *testing.T, o etcd.Options) (*etcd.Store, *etcd.Store) {
	t.Helper()
	prefix := newPrefix("race")
	return sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), o), sidecar(t, prefix, filepath.Join(t.TempDir(), "b.db"), o)
}

func sidecar(t *testing.T, prefix, replica string, o etcd.Options) *etcd.Store {
	t.Helper()
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps, o.MaxRequestBytes = raised.MaxTxnOps, raised.MaxRequestBytes
	}
	o.URL, o.Replica = cluster.StoreURL(prefix), replica
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitReady(t, s)
	return s
}

// counter reads role s/name as a number ("n<k>" its only permission; 0 when
// absent).
func counter(tx *store.Tx, name string) (int, error) {
	r, err := tx.Role("s", name)
	switch {
	case permatrix.ErrorCode(err) == permatrix.ENOTFOUND:
		return 0, nil
	case err != nil:
		return 0, err
	}
	n := 0
	fmt.Sscanf(r.Permissions[0], "n%d", &n)
	return n, nil
}

func setCounter(tx *store.Tx, name string, n int) error {
	return tx.PutRole(permatrix.Role{System: "s", Name: name, Permissions: []string{fmt.Sprintf("n%d", n)}})
}

func readCounter(t *testing.T, s store.Backend, name string) int {
	t.Helper()
	snap, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	r, err := store.Role(snap, "s", name)
	if permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fmt.Sscanf(r.Permissions[0], "n%d", &n)
	return n
}

// settle waits until both stores have applied rev.
func settle(t *testing.T, rev uint64, stores ...*etcd.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range stores {
		if err := s.Wait(ctx, rev); err != nil {
			t.Fatalf("revision %d never applied: %v", rev, err)
		}
	}
}

var errBroke = errors.New("insufficient funds")

// TestGroupCommitMoneyAndCounters: transfers between accounts (each reads
// and writes two of them; money is conserved and no balance goes below
// zero) beside counters of one writer each (every acknowledged increment is
// there, none twice), through two sidecars at once. Writers that acknowledge
// at the same revision shared a transaction: the test reports how often.
func TestGroupCommitMoneyAndCounters(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t, etcd.Options{})
	const accounts, initial = 5, 10
	if _, err := store.Update(ctx, a, func(tx *store.Tx) error {
		for i := range accounts {
			if err := setCounter(tx, fmt.Sprintf("acct%d", i), initial); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 15
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		revs    = map[uint64]int{} // acknowledged revision → writes acknowledged at it
		top     uint64
		acked   [writers]int
		refused atomic.Int64
	)
	ack := func(rev uint64) {
		mu.Lock()
		defer mu.Unlock()
		revs[rev]++
		top = max(top, rev)
	}
	deadline, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			for i := range each {
				var rev uint64
				var err error
				if w%4 < 2 {
					from, to := fmt.Sprintf("acct%d", (w+i)%accounts), fmt.Sprintf("acct%d", (w+2*i+1)%accounts)
					if from == to {
						to = fmt.Sprintf("acct%d", (w+i+1)%accounts)
					}
					rev, err = store.Update(deadline, s, func(tx *store.Tx) error {
						x, err := counter(tx, from)
						if err != nil {
							return err
						}
						y, err := counter(tx, to)
						if err != nil {
							return err
						}
						if x == 0 {
							return errBroke
						}
						if err := setCounter(tx, from, x-1); err != nil {
							return err
						}
						return setCounter(tx, to, y+1)
					})
					if errors.Is(err, errBroke) {
						refused.Add(1)
						continue
					}
				} else {
					name := fmt.Sprintf("own%d", w)
					rev, err = store.Update(deadline, s, func(tx *store.Tx) error {
						n, err := counter(tx, name)
						if err != nil {
							return err
						}
						return setCounter(tx, name, n+1)
					})
					if err == nil {
						acked[w]++
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				ack(rev)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	settle(t, top, a, b)
	for _, s := range []*etcd.Store{a, b} {
		sum := 0
		for i := range accounts {
			n := readCounter(t, s, fmt.Sprintf("acct%d", i))
			if n < 0 {
				t.Errorf("acct%d at %d", i, n)
			}
			sum += n
		}
		if sum != accounts*initial {
			t.Errorf("accounts sum to %d, want %d: a transfer was lost, doubled or made on stale balances", sum, accounts*initial)
		}
		for w := range writers {
			if w%4 >= 2 {
				if n := readCounter(t, s, fmt.Sprintf("own%d", w)); n != acked[w] {
					t.Errorf("own%d is %d, %d increments acknowledged", w, n, acked[w])
				}
			}
		}
	}
	logSharing(t, revs)
	t.Logf("%d transfers refused for want of funds", refused.Load())
}

// logSharing reports how many acknowledged writes shared a revision (a
// group transaction).
func logSharing(t *testing.T, revs map[uint64]int) {
	total, shared := 0, 0
	for _, n := range revs {
		total += n
		if n > 1 {
			shared += n
		}
	}
	t.Logf("%d writes acknowledged at %d revisions; %d of them shared one (group commit)", total, len(revs), shared)
}

// noise keeps both sidecars' commit queues busy with disjoint counters until
// stop is closed, so that the writes under test share transactions with
// others.
func noise(t *testing.T, stop chan struct{}, stores ...*etcd.Store) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("noise%d-%d", i, j)
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, err := store.Update(context.Background(), s, func(tx *store.Tx) error {
						n, err := counter(tx, name)
						if err != nil {
							return err
						}
						return setCounter(tx, name, n+1)
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	return &wg
}

var errTaken = errors.New("taken")

// TestCreateIfAbsentThroughPrefix: writers each create a role in a system
// only if the system has none yet. The judgement scans the whole system
// (a read of the prefix "d roles <system>", shallower than the unit of the
// role each writes): exactly one may win each round, on either sidecar.
func TestCreateIfAbsentThroughPrefix(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t, etcd.Options{})
	stop := make(chan struct{})
	bg := noise(t, stop, a, b)
	defer func() { close(stop); bg.Wait() }()
	const rounds, writers = 25, 8
	for round := range rounds {
		system := fmt.Sprintf("sys%d", round)
		var won atomic.Int64
		var wg sync.WaitGroup
		var top atomic.Uint64
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if w%2 == 1 {
					s = b
				}
				rev, err := store.Update(ctx, s, func(tx *store.Tx) error {
					roles, err := store.Roles(tx.View(), system)
					if err != nil {
						return err
					}
					if len(roles) > 0 {
						return errTaken
					}
					return tx.PutRole(permatrix.Role{System: system, Name: fmt.Sprintf("w%d", w), Permissions: []string{"p"}})
				})
				switch {
				case err == nil:
					won.Add(1)
					for old := top.Load(); rev > old && !top.CompareAndSwap(old, rev); old = top.Load() {
					}
				case !errors.Is(err, errTaken):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d writers created the system's first role, want exactly 1", round, n)
		}
		settle(t, top.Load(), a, b)
		for _, s := range []*etcd.Store{a, b} {
			snap, _ := s.View()
			roles, err := store.Roles(snap, system)
			snap.Close()
			if err != nil || len(roles) != 1 {
				t.Fatalf("round %d: system has roles %v (%v), want exactly one", round, roles, err)
			}
		}
	}
}

// TestMutualRevocation: A removes B's admin grant if A still has one, while
// B removes A's if B still has one; each judgement reads the grant the
// other removes. Never may both succeed (that would leave no admin, a
// state no order of the two writes reaches) — on one sidecar (where the
// two may meet in one group) or on two.
func TestMutualRevocation(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t, etcd.Options{})
	stop := make(chan struct{})
	bg := noise(t, stop, a, b)
	defer func() { close(stop); bg.Wait() }()
	admin := func(user string) permatrix.Assignment {
		return permatrix.Assignment{Subject: "user:" + user, System: "s", Role: "admin", Scope: permatrix.ServiceScope}
	}
	for round := range 60 {
		x, y := admin(fmt.Sprintf("a%d", round)), admin(fmt.Sprintf("b%d", round))
		rev, err := store.Update(ctx, a, func(tx *store.Tx) error {
			x.ID, y.ID = "", ""
			if err := tx.CreateAssignment(&x); err != nil {
				return err
			}
			return tx.CreateAssignment(&y)
		})
		if err != nil {
			t.Fatal(err)
		}
		settle(t, rev, a, b)
		revoke := func(s *etcd.Store, actor, victim permatrix.Assignment) error {
			_, err := store.Update(ctx, s, func(tx *store.Tx) error {
				if _, err := tx.Assignment(actor.ID); err != nil {
					return err // the actor is no admin any more
				}
				_, err := tx.DeleteAssignment(victim.ID)
				return err
			})
			return err
		}
		sb := a
		if round%2 == 1 {
			sb = b
		}
		var errs [2]error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); errs[0] = revoke(a, x, y) }()
		go func() { defer wg.Done(); errs[1] = revoke(sb, y, x) }()
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case permatrix.ErrorCode(err) != permatrix.ENOTFOUND:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d (same sidecar: %v): %d revocations succeeded, want exactly 1 (errors %v)", round, sb == a, ok, errs)
		}
	}
}

// TestGroupAttributesConflicts: a stale commit (its guard moved after its
// base; read directly or through a parent guard, fewerGuards) sent with
// many fresh ones — some reading nothing — that it may share a
// transaction with: it alone gets the conflict, with the revision that
// beat it; every other one is committed, once.
func TestGroupAttributesConflicts(t *testing.T) {
	ctx := context.Background()
	// 48 guards at most: a commit reading 60 units is guarded by parents.
	s, _ := pair(t, etcd.Options{MaxTxnOps: 48, MaxRequestBytes: raised.MaxRequestBytes})
	role := func(system, name string) []byte { return store.Key("d", "roles", system, name) }
	for round := range 10 {
		sys := fmt.Sprintf("s%d", round)
		base := s.Revision()
		won, err := store.Update(ctx, s, func(tx *store.Tx) error { return setCounter(tx, "winner"+sys, 1) })
		if err != nil {
			t.Fatal(err)
		}
		// The winner wrote d roles s winner<sys>: the unit the stale
		// commits read (directly, or among 60 siblings lifted to d roles s).
		direct := &store.Batch{Base: base, Reads: [][]byte{store.UnitOf(role("s", "winner"+sys))},
			Ops: []store.Op{{Key: role(sys, "direct"), Value: []byte(`{"permissions":[]}`)}}}
		lifted := &store.Batch{Base: base, Ops: []store.Op{{Key: role(sys, "lifted"), Value: []byte(`{"permissions":[]}`)}}}
		for i := range 60 {
			lifted.Reads = append(lifted.Reads, store.UnitOf(role("s", fmt.Sprintf("absent%d", i))))
		}
		now := s.Revision()
		var fresh []*store.Batch
		for i := range 30 {
			f := &store.Batch{Base: now, Ops: []store.Op{{Key: role(sys, fmt.Sprintf("f%d", i)), Value: []byte(`{"permissions":[]}`)}}}
			if i%2 == 0 { // half read their own unit, half nothing
				f.Reads = [][]byte{store.UnitOf(f.Ops[0].Key)}
			}
			fresh = append(fresh, f)
		}
		all := append([]*store.Batch{direct, lifted}, fresh...)
		revs, errs := make([]uint64, len(all)), make([]error, len(all))
		var wg sync.WaitGroup
		for i, b := range all {
			wg.Add(1)
			go func() { defer wg.Done(); revs[i], errs[i] = s.Commit(ctx, b) }()
		}
		wg.Wait()
		for i, err := range errs[:2] {
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Revision < won {
				t.Fatalf("round %d: stale commit %d: %v, want a conflict at revision ≥ %d", round, i, err, won)
			}
		}
		top := uint64(0)
		for i, err := range errs[2:] {
			if err != nil {
				t.Fatalf("round %d: fresh commit %d: %v (attributed to the stale ones' conflict?)", round, i, err)
			}
			top = max(top, revs[2+i])
		}
		settle(t, top, s)
		snap, _ := s.View()
		roles, err := store.Roles(snap, sys)
		snap.Close()
		if err != nil || len(roles) != len(fresh) {
			t.Fatalf("round %d: %d roles in %s (%v), want the %d fresh commits' only", round, len(roles), sys, err, len(fresh))
		}
	}
}

// TestGroupOverClusterLimit: a sidecar told limits above the cluster's
// groups commits that etcd then refuses together; each is made alone
// (every one fits the cluster by itself), and one over the cluster's limit
// by itself is refused with ETOOLARGE, changing nothing.
func TestGroupOverClusterLimit(t *testing.T) {
	ctx := context.Background()
	s, _ := pair(t, etcd.Options{MaxTxnOps: 8 * raised.MaxTxnOps, MaxRequestBytes: raised.MaxRequestBytes})
	const commits, each = 12, 300 // ≈ 300 ops each: 4 exceed the cluster's 1024
	batch := func(name string, n int) *store.Batch {
		b := &store.Batch{Base: s.Revision()}
		for k := range n {
			b.Ops = append(b.Ops, store.Op{Key: store.Key("d", "roles", name, fmt.Sprintf("r%d", k)), Value: []byte(`{"permissions":[]}`)})
		}
		b.Reads = [][]byte{store.UnitOf(b.Ops[0].Key)}
		return b
	}
	errs, revs := make([]error, commits+1), make([]uint64, commits+1)
	var wg sync.WaitGroup
	for i := range commits + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == commits {
				revs[i], errs[i] = s.Commit(ctx, batch("huge", 2*raised.MaxTxnOps))
				return
			}
			revs[i], errs[i] = s.Commit(ctx, batch(fmt.Sprintf("sys%d", i), each))
		}()
	}
	wg.Wait()
	top := uint64(0)
	for i, err := range errs[:commits] {
		if err != nil {
			t.Fatalf("commit %d of %d ops: %v", i, each, err)
		}
		top = max(top, revs[i])
	}
	if permatrix.ErrorCode(errs[commits]) != permatrix.ETOOLARGE {
		t.Fatalf("a commit over the cluster's limit: %v, want ETOOLARGE", errs[commits])
	}
	settle(t, top, s)
	snap, _ := s.View()
	defer snap.Close()
	for i := range commits {
		if roles, err := store.Roles(snap, fmt.Sprintf("sys%d", i)); err != nil || len(roles) != each {
			t.Fatalf("sys%d: %d roles (%v), want %d", i, len(roles), err, each)
		}
	}
	if roles, _ := store.Roles(snap, "huge"); len(roles) != 0 {
		t.Fatalf("the refused commit wrote %d roles", len(roles))
	}
}

// TestNoStaleRefusal: a write acknowledged by one sidecar, then at once a
// write through the other whose answer rests on it — removing what was
// just made, making again what was just made (nothing to do), judged by
// a grant just given. The second sidecar's replica may not have the first
// write yet: it must not refuse (ENOTFOUND, a judgement's refusal) nor
// answer "nothing to do" at a revision before the first write's.
func TestNoStaleRefusal(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t, etcd.Options{})
	for round := range 100 {
		x := permatrix.Assignment{Subject: fmt.Sprintf("user:u%d", round), System: "s", Role: "r", Scope: permatrix.ServiceScope}
		made, err := store.Update(ctx, a, func(tx *store.Tx) error { x.ID = ""; return tx.CreateAssignment(&x) })
		if err != nil {
			t.Fatal(err)
		}
		switch round % 3 {
		case 0: // remove it through b
			rev, err := store.Update(ctx, b, func(tx *store.Tx) error { _, err := tx.DeleteAssignment(x.ID); return err })
			if err != nil || rev <= made {
				t.Fatalf("round %d: removing %s (made at %d) through the other sidecar: %d %v", round, x.ID, made, rev, err)
			}
		case 1: // make it again through b: nothing to do, at or after made
			y := x
			y.ID = ""
			rev, err := store.Update(ctx, b, func(tx *store.Tx) error { y.ID = ""; return tx.CreateAssignment(&y) })
			if err != nil || y.ID != x.ID || rev < made {
				t.Fatalf("round %d: making %s (made at %d) again through the other sidecar: id %q at %d, %v", round, x.ID, made, y.ID, rev, err)
			}
		case 2: // a write judged by the grant just given
			rev, err := store.Update(ctx, b, func(tx *store.Tx) error {
				if _, err := tx.Assignment(x.ID); err != nil {
					return err
				}
				return setCounter(tx, fmt.Sprintf("by%d", round), 1)
			})
			if err != nil || rev <= made {
				t.Fatalf("round %d: a write allowed by %s (made at %d) through the other sidecar: %d %v", round, x.ID, made, rev, err)
			}
		}
	}
}

// hammer runs writers of disjoint and shared counters on s until they fail
// or ctxOf's context ends, and counts what was acknowledged and tried.
type hammer struct {
	name           string // of its counters: <name>0…
	wg             sync.WaitGroup
	acked, tried   [8]atomic.Int64
	unexpected     atomic.Int64
	firstUnexpeced atomic.Pointer[error]
}

func (h *hammer) run(s *etcd.Store, ctxOf func() (context.Context, context.CancelFunc), stop chan struct{}) {
	for w := range len(h.acked) {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			name := fmt.Sprintf("%s%d", h.name, w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := ctxOf()
				h.tried[w].Add(1)
				_, err := store.Update(ctx, s, func(tx *store.Tx) error {
					n, err := counter(tx, name)
					if err != nil {
						return err
					}
					return setCounter(tx, name, n+1)
				})
				gaveUp := ctx.Err() != nil
				cancel()
				switch {
				case err == nil:
					h.acked[w].Add(1)
				case gaveUp && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
					strings.Contains(err.Error(), "ran out of time")): // its commit in flight
				case permatrix.ErrorCode(err) == permatrix.EUNAVAILABLE:
					return // the store is closing
				default:
					h.unexpected.Add(1)
					h.firstUnexpeced.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
}

// wait waits for the writers, at most d.
func (h *hammer) wait(t *testing.T, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		t.Fatalf("writers still blocked after %s:\n%s", d, buf[:runtime.Stack(buf, true)])
	}
	if n := h.unexpected.Load(); n > 0 {
		t.Fatalf("%d unexpected errors, the first: %v", n, *h.firstUnexpeced.Load())
	}
}

// waitAcked waits until n writes were acknowledged (a minute's guard).
func (h *hammer) waitAcked(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); sum(&h.acked) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes acknowledged in a minute, want %d (%d unexpected errors)", sum(&h.acked), n, h.unexpected.Load())
		}
	}
}

// check: every counter holds at least the increments acknowledged and at
// most those tried (one whose client gave up may be made or not).
func (h *hammer) check(t *testing.T, s store.Backend) {
	t.Helper()
	for w := range len(h.acked) {
		n := readCounter(t, s, fmt.Sprintf("%s%d", h.name, w))
		if acked, tried := int(h.acked[w].Load()), int(h.tried[w].Load()); n < acked || n > tried {
			t.Errorf("counter %s%d is %d: %d increments acknowledged, %d tried", h.name, w, n, acked, tried)
		}
	}
}

// settleGoroutines waits for the goroutine count to fall to at most n.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steadyGoroutines is the goroutine count once it has held for a quarter
// second (at most five seconds): an earlier test's etcd clients may still
// be dialling or closing, their transports' goroutines coming and going
// after it ended, and a count taken among them is no baseline (a
// transport made just after it was counted as this test's leak).
func steadyGoroutines() int {
	n, same := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(5 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// TestCloseWithCommitsQueued: closing a sidecar while writers keep its
// commit queue full neither hangs a writer nor leaks a goroutine, and no
// acknowledged write is lost (another sidecar reads them all).
func TestCloseWithCommitsQueued(t *testing.T) {
	prefix := newPrefix("close")
	other := sidecar(t, prefix, filepath.Join(t.TempDir(), "other.db"), etcd.Options{})
	before := steadyGoroutines()
	o := raised
	// A request timeout far past the wait for the writers below: one kept
	// for it is told from one let go, however slow the machine.
	o.URL, o.Replica, o.RequestTimeout = cluster.StoreURL(prefix), filepath.Join(t.TempDir(), "closing.db"), 2*time.Minute
	s, err := etcd.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, s)
	h := hammer{name: "c"}
	stop := make(chan struct{})
	h.run(s, func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 2*time.Minute)
	}, stop)
	// Closed with commits queued: once writes are acknowledged, the eight
	// writers keep the queue full (a fixed 300 ms stood for that, and
	// a slow start had acknowledged none: "the test tested nothing").
	h.waitAcked(t, 50)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("Close hangs with commits queued:\n%s", buf[:runtime.Stack(buf, true)])
	}
	close(stop)
	// A writer waiting for the replica to apply its commit is let go
	// (the watch has stopped: it never will), not kept for the request
	// timeout (2 minutes here).
	h.wait(t, 30*time.Second)
	settleGoroutines(t, before+2)
	// Every acknowledged increment is in etcd: the other sidecar sees it.
	settleToCluster(t, other)
	h.check(t, other)
	if sum(&h.acked) == 0 {
		t.Fatal("no write was acknowledged before Close: the test tested nothing")
	}
}

// TestCancelWhileQueued: writers whose clients give up after a few
// milliseconds, while the queue is full: none hangs, no goroutine is left
// behind, every acknowledged write is there and none is made twice.
func TestCancelWhileQueued(t *testing.T) {
	prefix := newPrefix("cancel")
	s := sidecar(t, prefix, filepath.Join(t.TempDir(), "s.db"), etcd.Options{})
	before := steadyGoroutines()
	h := hammer{name: "c"}
	stop := make(chan struct{})
	var n atomic.Int64
	h.run(s, func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), time.Duration(1+n.Add(1)%40)*time.Millisecond)
	}, stop)
	// Writers that wait their turn: they must get through.
	patient := hammer{name: "patient"}
	patient.run(s, func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}, stop)
	// Two seconds of it, and on until patient writes got through (on a
	// slow machine two seconds may have seen none).
	start := time.Now()
	patient.waitAcked(t, 1)
	time.Sleep(time.Until(start.Add(2 * time.Second)))
	close(stop)
	h.wait(t, 30*time.Second)
	patient.wait(t, 30*time.Second)
	settleGoroutines(t, before+2)
	settleToCluster(t, s)
	h.check(t, s)
	total := sum(&patient.acked)
	if total == 0 {
		t.Fatal("no patient write was acknowledged")
	}
	t.Logf("impatient: %d acknowledged of %d tried; patient: %d acknowledged", sum(&h.acked), sum(&h.tried), total)
}

// settleToCluster waits until every store has applied the cluster's
// latest revision.
func settleToCluster(t *testing.T, stores ...*etcd.Store) {
	t.Helper()
	resp, err := client(t).Get(context.Background(), "settle")
	if err != nil {
		t.Fatal(err)
	}
	settle(t, uint64(resp.Header.Revision), stores...)
}

func sum(c *[8]atomic.Int64) int64 {
	t := int64(0)
	for i := range c {
		t += c[i].Load()
	}
	return t
}

// TestCommitAfterClientLeft: a commit whose client has already gone (its
// context ended) is answered with the context's error — and, being never
// sent, makes nothing: an error the client may never see must not hide a
// write made after it.
func TestCommitAfterClientLeft(t *testing.T) {
	s, _ := pair(t, etcd.Options{})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &store.Batch{Base: s.Revision(), Ops: []store.Op{{Key: store.Key("d", "roles", "s", fmt.Sprintf("r%d", i)), Value: []byte(`{"permissions":[]}`)}}}
			if _, err := s.Commit(gone, b); !errors.Is(err, context.Canceled) {
				t.Errorf("commit %d with its context ended: %v", i, err)
			}
		}()
	}
	wg.Wait()
	// Then one that is made: once it is applied, nothing before it is
	// still on its way.
	rev, err := s.Commit(context.Background(), &store.Batch{Base: s.Revision(), Ops: []store.Op{{Key: store.Key("d", "roles", "s", "last"), Value: []byte(`{"permissions":[]}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // commits still queued would be made by now
	if rev, err = s.Commit(context.Background(), &store.Batch{Base: s.Revision(), Ops: []store.Op{{Key: store.Key("d", "roles", "t", "last"), Value: []byte(`{"permissions":[]}`)}}}); err != nil {
		t.Fatal(err)
	}
	settle(t, rev, s)
	snap, _ := s.View()
	defer snap.Close()
	roles, err := store.Roles(snap, "s")
	if err != nil || len(roles) != 1 {
		t.Fatalf("after 100 commits whose clients had left and one made: %d roles (%v), want 1", len(roles), err)
	}
}

// TestKeyWrittenTwiceInOneCommit: a plan may write a key more than once
// (a role put, then put again); etcd refuses a key twice in one
// transaction, so the commit must carry the last operation only — else it
// fails, and with it every commit sharing its transaction.
func TestKeyWrittenTwiceInOneCommit(t *testing.T) {
	ctx := context.Background()
	s, _ := pair(t, etcd.Options{})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = store.Update(ctx, s, func(tx *store.Tx) error {
				name := fmt.Sprintf("r%d", i)
				if i%2 == 1 { // an innocent one beside
					return setCounter(tx, name, 1)
				}
				if err := setCounter(tx, name, 1); err != nil {
					return err
				}
				if err := setCounter(tx, name, 2); err != nil {
					return err
				}
				x := permatrix.Assignment{Subject: "user:" + name, System: "s", Role: "r", Scope: permatrix.ServiceScope}
				if err := tx.CreateAssignment(&x); err != nil {
					return err
				}
				_, err := tx.DeleteAssignment(x.ID)
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	snap, _ := s.View()
	defer snap.Close()
	for i := range errs {
		want := 1 + (1 - i%2)
		r, err := store.Role(snap, "s", fmt.Sprintf("r%d", i))
		if err != nil || r.Permissions[0] != fmt.Sprintf("n%d", want) {
			t.Fatalf("r%d: %+v %v, want n%d", i, r, err, want)
		}
	}
	if list, _, _ := store.Assignments(snap, permatrix.AssignmentFilter{}); len(list) != 0 {
		t.Fatalf("assignments made and removed in one commit are there: %v", list)
	}
}

// TestNothingToDoRevision: the revision a write answers with is one at
// which its outcome holds — also when it found nothing to do while another
// sidecar undid and redid it. A member added (or found a member) at
// revision R is a member in etcd at R.
func TestNothingToDoRevision(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix("noop")
	a := sidecar(t, prefix, filepath.Join(t.TempDir(), "a.db"), etcd.Options{})
	b := sidecar(t, prefix, filepath.Join(t.TempDir(), "b.db"), etcd.Options{})
	m := permatrix.Membership{Group: "g", User: "u"}
	key := "/" + prefix + "/k/" + string(store.Key("d", "memberships", m.User, m.Group))
	if _, err := store.Update(ctx, a, func(tx *store.Tx) error { return tx.AddMember(m) }); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // b removes and adds the member again and again
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, fn := range []func(*store.Tx) error{func(tx *store.Tx) error { return tx.RemoveMember(m) }, func(tx *store.Tx) error { return tx.AddMember(m) }} {
				if _, err := store.Update(ctx, b, fn); err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
					t.Error(err)
					return
				}
			}
		}
	}()
	var revs []uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		rev, err := store.Update(ctx, a, func(tx *store.Tx) error { return tx.AddMember(m) })
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	close(stop)
	wg.Wait()
	cli := client(t)
	for _, rev := range revs {
		resp, err := cli.Get(ctx, key, clientv3.WithRev(int64(rev)))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			t.Fatalf("a member was added (or found) at revision %d, where etcd has no such member", rev)
		}
	}
	t.Logf("%d answers checked", len(revs))
}

// A commit on a closed store was put in the commit queue or refused at
// random (both ready in one select): queued, no committer ever took it,
// yet it was answered "the write was made entirely or not at all" — a
// write that may be made, of one never sent. A commit no committer took
// is answered "nothing was written".
func TestCommitAfterCloseSaysNothingWritten(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, newPrefix("closedcommit"), filepath.Join(t.TempDir(), "r.db"))
	base, epoch := s.Revision(), s.Changes().Epoch()
	s.Close()
	for i := range 20 {
		_, err := s.Commit(ctx, &store.Batch{Base: base, Epoch: epoch,
			Ops: []store.Op{{Key: store.Key("d", "grants", fmt.Sprintf("user:%d", i), "s", "role", "r", "service"), Value: []byte(storetest.RecordValue(store.Key("d", "grants", fmt.Sprintf("user:%d", i), "s", "role", "r", "service"), 1))}}})
		if err == nil || !strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("commit %d on a closed store: %v", i, err)
		}
	}
}
