package pdp_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// pausedCommits is a bbolt store whose next commit, once paused, waits
// for release: a write held between its verdict and its commit.
type pausedCommits struct {
	store.Backend
	pause    atomic.Bool
	started  chan struct{}
	released chan struct{}
}

func (p *pausedCommits) Commit(ctx context.Context, b *store.Batch) (uint64, error) {
	if p.pause.CompareAndSwap(true, false) {
		close(p.started)
		<-p.released
	}
	return p.Backend.Commit(ctx, b)
}

// A write is judged by the bundle active when it commits. A write judged
// under one bundle committed after the next was active: a Blue Prism user
// manager's assignment, judged before a bundle that refuses every actor
// write there was activated, was stored once that bundle was serving (an
// operator's fix, a delegation withdrawn, a system dropped: bypassed by a
// write in flight, for as long as an all-or-nothing import takes).
func TestWriteNotCommittedUnderASwappedOutBundle(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	backend := &pausedCommits{Backend: db, started: make(chan struct{}), released: make(chan struct{})}
	engine := opa.NewEngine(db)
	svc := pdp.New(backend, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "users", Permissions: []string{"security_users"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:ba", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}

	// The next bundle: no actor writes in blueprism.
	engine.AddModule(opa.ModuleSource{Name: "freeze.rego", Source: "package permatrix.systems.blueprism\n\nforbidden contains \"frozen\" if input.actor\n"})
	var swappedAt atomic.Uint64
	engine.OnActivate(func(*opa.Policy) { swappedAt.Store(db.Revision()) })

	backend.pause.Store(true)
	type result struct {
		rev uint64
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		_, rev, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:friend", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, "ba")
		wrote <- result{rev, err}
	}()
	<-backend.started // judged under the first bundle, not committed
	activated := make(chan error, 1)
	go func() { _, err := svc.Activate(ctx, b); activated <- err }()
	// Let the commit go once the next bundle is active, or once its
	// activation waits for the write in flight.
	var actErr error
	done := false
	for !done && !pdp.SwapWaiting(svc) {
		select {
		case actErr = <-activated:
			done = true
		default:
			runtime.Gosched()
		}
	}
	close(backend.released)
	w := <-wrote
	if !done {
		actErr = <-activated
	}
	if actErr != nil {
		t.Fatal(actErr)
	}
	switch {
	case w.err == nil && w.rev > swappedAt.Load():
		t.Fatalf("the write judged under the first bundle was committed at revision %d, after the bundle refusing it became active (at revision %d)", w.rev, swappedAt.Load())
	case w.err != nil && permatrix.ErrorCode(w.err) != permatrix.EFORBIDDEN:
		t.Fatalf("the write: %v", w.err)
	}
	// Either way the next bundle judges the next write.
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:other", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, "ba"); permatrix.ErrorCode(err) != permatrix.EFORBIDDEN {
		t.Fatalf("a write after the activation: %v, want forbidden", err)
	}
}
