package pdp_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// overlapSetup is a service whose chunk 1 of an import is held before
// its commit (pausedCommits) while chunk 2, planned under the bundle
// active then, waits for it: user:ba holds a Blue Prism custom role that
// lets it assign that role (its assignment's id is returned). Lines: 1 the
// operator's assignment of nothing ba's right reads, 2 and 3 ba's.
type overlapSetup struct {
	svc     *pdp.Service
	engine  *opa.Engine
	backend *pausedCommits
	bundle  *opa.Bundle
	baID    string
	done    chan importDone
}

type importDone struct {
	res pdp.ImportResult
	err error
}

func startOverlapped(t *testing.T) *overlapSetup {
	t.Helper()
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	o := &overlapSetup{backend: &pausedCommits{Backend: db, started: make(chan struct{}), released: make(chan struct{})}, done: make(chan importDone, 1)}
	o.engine = opa.NewEngine(db)
	o.svc = pdp.New(o.backend, o.engine, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if o.bundle, err = opa.ReadDefault(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.svc.Activate(ctx, o.bundle); err != nil {
		t.Fatal(err)
	}
	if _, err := o.svc.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "users", Permissions: []string{"security_users"}}, ""); err != nil {
		t.Fatal(err)
	}
	a, _, err := o.svc.Assign(ctx, permatrix.Assignment{Subject: "user:ba", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, "")
	if err != nil {
		t.Fatal(err)
	}
	o.baID = a.ID
	o.backend.pause.Store(true)
	src := &lines{n: 3, line: func(n int) pdp.ImportLine {
		if n == 1 {
			return analyst(n)
		}
		return pdp.ImportLine{Line: n, Actor: "ba", Assignment: permatrix.Assignment{Subject: "user:friend" + string(rune('0'+n)), System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}}
	}}
	go func() {
		res, err := o.svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: 1})
		o.done <- importDone{res, err}
	}()
	<-o.backend.started // chunk 1 judged, its commit held
	// Chunk 2 planned, waiting for chunk 1 (its goroutine's stack shows it).
	waitFor(t, "chunk 2 waiting for chunk 1 (chunkWrite.settle)", waitingInSettle)
	return o
}

// waitFor yields until cond holds; a minute without it fails t (rather
// than hanging until go test's timeout).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("a minute without %s", what)
		}
	}
}

// waitingInSettle says a chunk's write waits for the chunk before it.
func waitingInSettle() bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "[chan receive") && strings.Contains(g, "pdp.(*chunkWrite).settle") {
			return true
		}
	}
	return false
}

// refusedAtLine2 checks that the import committed line 1 and stopped,
// forbidden, at line 2: nothing of ba's is stored.
func (o *overlapSetup) refusedAtLine2(t *testing.T) {
	t.Helper()
	d := <-o.done
	wantCode(t, d.err, permatrix.EFORBIDDEN, "line 2: ")
	if d.res.LastLine != 1 || d.res.Imported != 1 {
		t.Fatalf("result %+v", d.res)
	}
	if has(t, o.svc, "user:friend2") || has(t, o.svc, "user:friend3") {
		t.Fatal("a line of ba's, judged before ba lost its right, was committed")
	}
}

// A bundle swapped in while chunk 2, planned under the bundle before,
// waits for chunk 1: chunk 2 is judged by the new bundle (which refuses
// every actor write in Blue Prism), never committed under the one swapped
// out. Chunk 1 commits under the bundle it was judged by: the swap waits
// for it.
func TestImportOverlapChunkJudgedByTheBundleSwappedIn(t *testing.T) {
	o := startOverlapped(t)
	o.engine.AddModule(opa.ModuleSource{Name: "freeze.rego", Source: "package permatrix.systems.blueprism\n\nforbidden contains \"frozen\" if input.actor\n"})
	activated := make(chan error, 1)
	go func() { _, err := o.svc.Activate(context.Background(), o.bundle); activated <- err }()
	waitFor(t, "the bundle swap waiting for the chunk's commit", func() bool { return pdp.SwapWaiting(o.svc) })
	close(o.backend.released)
	if err := <-activated; err != nil {
		t.Fatal(err)
	}
	o.refusedAtLine2(t)
}

// A write made while chunk 2, planned, waits for chunk 1 — the removal of
// the assignment that gave chunk 2's actor its right — is not lost, and
// chunk 2 is judged again on the state with it: refused.
func TestImportOverlapChunkJudgedAgainAfterAWriteMeanwhile(t *testing.T) {
	o := startOverlapped(t)
	if _, err := o.svc.Unassign(context.Background(), o.baID, ""); err != nil {
		t.Fatal(err)
	}
	close(o.backend.released)
	o.refusedAtLine2(t)
	if has(t, o.svc, "user:ba") {
		t.Fatal("the removal of ba's assignment, made while the import's chunk waited, is lost")
	}
}

// failingCommit is a bbolt store whose commit number fail fails as a
// full disk's does (ESTORAGE), before it reaches the file.
type failingCommit struct {
	store.Backend
	commits, fail int
}

func (f *failingCommit) Commit(ctx context.Context, b *store.Batch) (uint64, error) {
	if f.commits++; f.commits == f.fail {
		return 0, permatrix.Errorf(permatrix.ESTORAGE, "the disk is full")
	}
	return f.Backend.Commit(ctx, b)
}

// A chunk whose commit fails ends the import with that failure: the chunk
// after it, planned meanwhile, is not committed, nothing is reported past
// the chunk before, and no chunk's write runs once ImportStream returned.
func TestImportOverlapFailedCommitStopsTheChunksAfter(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	backend := &failingCommit{Backend: db, fail: 2}
	svc := pdp.New(backend, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	const chunk = 200
	var told []pdp.ImportResult
	res, err := svc.ImportStream(context.Background(), (&lines{n: 5 * chunk, line: analyst}).next, pdp.ImportOptions{Chunk: chunk, Progress: func(r pdp.ImportResult) { told = append(told, r) }})
	if writing := chunkWriting(); writing != "" {
		t.Fatalf("a chunk's write runs after ImportStream returned:\n%s", writing)
	}
	wantCode(t, err, permatrix.ESTORAGE, "the disk is full")
	if res.LastLine != chunk || res.Chunks != 1 || len(told) != 1 || told[0].LastLine != chunk {
		t.Fatalf("result %+v, progress told %+v: want chunk 1 alone", res, told)
	}
	if n := count(t, svc); n != chunk || has(t, svc, "user:a401") {
		t.Fatalf("the store holds %d assignments after chunk 2's commit failed, want chunk 1's %d", n, chunk)
	}
}
