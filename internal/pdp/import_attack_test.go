package pdp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// An import in chunks while single writes make and unmake Celonis members
// among the users it grants permissions to (and a bundle is activated
// again now and then) keeps every invariant of the write protocol at
// once: no member holds a permission; the store holds exactly the lines
// up to the result's LastLine (none after, none lost), counted as
// Imported and AlreadyStored; a refused line is after LastLine and in the
// chunk after it; every single write acknowledged is there (and the
// members removed are gone).
func TestImportChunksAgainstMembersMadeAndUnmade(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const users, rounds = 30, 12
	r := rand.New(rand.NewPCG(43, 1))
	ctx := context.Background()
	lineRe := regexp.MustCompile(`^line (\d+): `)
	replans := uint64(0)
	for round := range rounds {
		_, svc := newBoltService(t)
		if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "group:gm", System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, ""); err != nil {
			t.Fatal(err)
		}
		chunk := []int{40, 64, 100, 150}[round%4]
		var imported []pdp.ImportLine
		for i := range 800 {
			imported = append(imported, pdp.ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
				Subject: fmt.Sprintf("user:c%d", r.IntN(min(users, 1+i/25))), System: "celonis-task-mining", Permission: "edit_users",
				Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", r.IntN(40))}}})
		}
		seed := r.Uint64()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		members := map[string]string{} // user → the id of its role the writer gave, acknowledged and not removed
		var writeErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(seed, 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := wr.IntN(users)
				u := fmt.Sprintf("user:c%d", n)
				gm := permatrix.Membership{Group: "gm", User: fmt.Sprintf("c%d", n)}
				if id, ok := members[u]; ok {
					var err error
					if id == "gm" {
						_, err = svc.RemoveMember(ctx, gm, "")
					} else {
						_, err = svc.Unassign(ctx, id, "")
					}
					if err != nil {
						writeErr = fmt.Errorf("unassign %s of %s: %w", id, u, err)
						return
					}
					delete(members, u)
					continue
				}
				// Mostly an analyst (allowed beside a permission: the
				// chunks reading u conflict, none is refused), now and
				// then a member, itself or in group:gm (a member group:
				// a permission is refused to its members, yet a user
				// holding one is put in it — membership writes are
				// judged for the actor's right only — so its members
				// are left out of the rule's check below).
				var a permatrix.Assignment
				var err error
				switch wr.IntN(8) {
				case 0:
					a, _, err = svc.Assign(ctx, permatrix.Assignment{Subject: u, System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, "")
				case 1:
					_, err = svc.AddMember(ctx, gm, "")
					a.ID = "gm"
				default:
					a, _, err = svc.Assign(ctx, permatrix.Assignment{Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, "")
				}
				switch {
				case err == nil:
					members[u] = a.ID
				case permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE:
					writeErr = fmt.Errorf("member %s: %w", u, err)
					return
				}
			}
		}()
		if round%3 == 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := opa.ReadDefault()
				if err != nil {
					t.Error(err)
					return
				}
				for {
					select {
					case <-stop:
						return
					case <-time.After(3 * time.Millisecond):
					}
					if _, err := svc.Activate(ctx, b); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		src := &lines{n: len(imported), line: func(n int) pdp.ImportLine { return imported[n-1] }}
		var told []pdp.ImportResult
		res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk, Progress: func(r pdp.ImportResult) { told = append(told, r) }})
		close(stop)
		wg.Wait()
		if writeErr != nil {
			t.Fatalf("round %d: the single writer: %v", round, writeErr)
		}
		refusedAt := 0
		if err != nil {
			if permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE {
				t.Fatalf("round %d: %v", round, err)
			}
			m := lineRe.FindStringSubmatch(permatrix.ErrorMessage(err))
			if m == nil {
				t.Fatalf("round %d: a refusal naming no line: %v", round, err)
			}
			refusedAt, _ = strconv.Atoi(m[1])
			if refusedAt <= res.LastLine || refusedAt > res.LastLine+chunk || res.LastLine%chunk != 0 {
				t.Fatalf("round %d (chunk %d): line %d refused, the result %+v", round, chunk, refusedAt, res)
			}
		} else if res.LastLine != len(imported) {
			t.Fatalf("round %d: no error, the result %+v", round, res)
		}
		// The store: exactly the lines up to LastLine.
		want := map[string]bool{}
		for _, l := range imported[:res.LastLine] {
			want[l.Assignment.Subject+"|"+l.Assignment.Scope.ID] = true
		}
		list := allAssignments(t, svc)
		got, stored, isMember := map[string]bool{}, map[string]string{}, map[string]bool{}
		gmUsers, _, _, err := svc.MembersPage(ctx, "gm", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range gmUsers {
			stored["user:"+u] = "gm"
		}
		for _, a := range list {
			if a.Subject == "group:gm" {
				continue
			}
			if a.Role != "" {
				stored[a.Subject] = a.ID
				if a.Role == "member" {
					isMember[a.Subject] = true
				}
				continue
			}
			got[a.Subject+"|"+a.Scope.ID] = true
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("round %d: %s, a line up to %d, is not stored", round, k, res.LastLine)
			}
		}
		for k := range got {
			if !want[k] {
				t.Fatalf("round %d: %s is stored, not a line up to %d", round, k, res.LastLine)
			}
		}
		if res.Imported != len(want) || res.Imported+res.AlreadyStored != res.LastLine || res.Lines < res.LastLine {
			t.Fatalf("round %d: result %+v, %d distinct lines stored", round, res, len(want))
		}
		if len(told) != (res.LastLine+chunk-1)/chunk || (len(told) > 0 && !sameCommits(told[len(told)-1], res)) {
			t.Fatalf("round %d: progress told %d times (last %+v), the result %+v", round, len(told), told, res)
		}
		for i, c := range told {
			if c.LastLine != min((i+1)*chunk, len(imported)) || (i > 0 && c.Revision < told[i-1].Revision) {
				t.Fatalf("round %d: progress out of order: %+v", round, told)
			}
		}
		// Every acknowledged single write.
		if len(stored) != len(members) {
			t.Fatalf("round %d: %d roles stored, %d acknowledged", round, len(stored), len(members))
		}
		for u, id := range members {
			if stored[u] != id {
				t.Fatalf("round %d: %s's role %s acknowledged, stored %q", round, u, id, stored[u])
			}
		}
		// The rule.
		for k := range got {
			for u := range isMember {
				if len(k) > len(u) && k[:len(u)+1] == u+"|" {
					t.Fatalf("round %d: %s is a Celonis member holding a permission (%s)", round, u, k)
				}
			}
		}
		replans += pdp.PlansAgain(svc)
		t.Logf("round %d chunk %d: %+v, refused at %d, %d members", round, chunk, res, refusedAt, len(members))
	}
	if replans == 0 {
		t.Fatal("no chunk was planned again: the test meets no conflict")
	}
}

// sameCommits says a and b count the same commits (the lines read may
// differ: the import reads a chunk ahead).
func sameCommits(a, b pdp.ImportResult) bool {
	a.Lines = b.Lines
	return a == b
}

// An import in chunks whose context ends at any moment — a chunk reading,
// planning, waiting for the chunk before, planning again after a conflict
// with the single writes to its users, committing — returns with no
// chunk's write or judging ahead left running, and its result says what
// the store holds: the lines up to LastLine, none after.
func TestImportChunksCancelledAnywhere(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rand.New(rand.NewPCG(43, 2))
	for round := range 8 {
		_, svc := newBoltService(t)
		var imported []pdp.ImportLine
		for i := range 1500 {
			imported = append(imported, pdp.ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
				Subject: fmt.Sprintf("user:c%d", i%50), System: "celonis-task-mining", Permission: "edit_users",
				Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}})
		}
		ctx, cancel := context.WithCancel(context.Background())
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := grantAndRevoke(context.Background(), svc, permatrix.Assignment{Subject: fmt.Sprintf("user:c%d", i%50), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}); err != nil {
					t.Errorf("the writer: %v", err)
					return
				}
			}
		}()
		time.AfterFunc(time.Duration(r.IntN(400))*time.Millisecond, cancel)
		src := &lines{n: len(imported), line: func(n int) pdp.ImportLine { return imported[n-1] }}
		res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: []int{64, 100, 250}[round%3]})
		writing := chunkWriting()
		close(stop)
		wg.Wait()
		cancel()
		if writing != "" {
			t.Fatalf("round %d: a chunk's write runs after ImportStream returned:\n%s", round, writing)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: %v", round, err)
		}
		n := 0
		for _, a := range allAssignments(t, svc) {
			if a.Permission != "" {
				n++
			}
		}
		if n != res.LastLine || res.Imported != n || (err == nil && n != len(imported)) {
			t.Fatalf("round %d: result %+v (%v), the store holds %d of the lines", round, res, err, n)
		}
		for _, l := range imported[:res.LastLine] {
			if !has(t, svc, l.Assignment.Subject) {
				t.Fatalf("round %d: line %d not stored", round, l.Line)
			}
		}
		t.Logf("round %d: %+v %v", round, res, err)
	}
	// The workers judging ahead, and the chunks' goroutines, are gone.
	deadline := time.Now().Add(5 * time.Second)
	for pdpRunning() != "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := pdpRunning(); g != "" {
		t.Fatalf("a goroutine of the service runs after the imports returned:\n%s", g)
	}
}

// pdpRunning is the stack of a goroutine running the service's code but
// no test's (a chunk's write, a worker judging ahead), "" if none is.
func pdpRunning() string {
	return goroutineWith(func(g string) bool {
		return strings.Contains(g, "internal/pdp.(*") && !strings.Contains(g, "testing.tRunner")
	})
}

// An import in chunks, every chunk granting to user:k5, while a single
// writer grants and revokes k5's role as fast as it can: every chunk's
// first plan may lose to the writer (and to the chunk before), its
// second too; it still commits (its second or third plan holds the writers
// whole, whatever its size), and every line is stored.
func TestImportChunksNotStarvedByWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, chunk := range []int{20, 63, 64, 300} {
		t.Run(strconv.Itoa(chunk), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			svc := newService(t)
			const n = 1200
			var imported []pdp.ImportLine
			for i := range n {
				subject := fmt.Sprintf("user:k%d", i)
				if i%chunk == chunk/2 {
					subject = "user:k5"
				}
				imported = append(imported, pdp.ImportLine{Line: i + 1, Assignment: permatrix.Assignment{
					Subject: subject, System: "celonis-task-mining", Permission: "edit_users",
					Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}})
			}
			var wg sync.WaitGroup
			writes := 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil { // a grant and its revoke, whole
					if err := grantAndRevoke(context.Background(), svc, permatrix.Assignment{Subject: "user:k5", System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}); err != nil {
						t.Errorf("the writer: %v", err)
						return
					}
					writes++
				}
			}()
			time.Sleep(20 * time.Millisecond)
			again := pdp.PlansAgain(svc)
			src := &lines{n: n, line: func(i int) pdp.ImportLine { return imported[i-1] }}
			start := time.Now()
			res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk})
			cancel()
			wg.Wait()
			if err != nil {
				t.Fatalf("after %s and %d writes of the other writer: %v (%+v)", time.Since(start), writes, err, res)
			}
			if res.LastLine != n || res.Imported != n || count(t, svc) != n {
				t.Fatalf("result %+v, store holds %d", res, count(t, svc))
			}
			t.Logf("%s, %d writes meanwhile, %d verdicts taken again", time.Since(start), writes, pdp.PlansAgain(svc)-again)
		})
	}
}

// A bundle activated while an import's chunks are read, planned, planned
// again and committed judges every chunk committed after it: here it
// refuses the line of user:frozen<n> every chunk holds, so no chunk
// commits at a revision after the one the store was at once the
// activation returned (a commit judged by the bundle before holds the
// writers shared until it is made, and the swap waits for them whole).
func TestImportChunksJudgedByTheBundleActivatedMidway(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rand.New(rand.NewPCG(43, 3))
	ctx := context.Background()
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 6 {
		// Commits slowed down: the import outlasts the bundle's
		// compilation, and a chunk planned waits for the chunk before
		// most of the time, the writers not held.
		db, engine, svc := newSlowService(t, b)
		chunk := []int{50, 64, 200}[round%3]
		const n = 2000
		src := &lines{n: n, line: func(i int) pdp.ImportLine {
			subject := fmt.Sprintf("user:a%d", i)
			if i%chunk == 7 {
				subject = fmt.Sprintf("user:frozen%d", i)
			}
			return pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{
				Subject: subject, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope}}
		}}
		// A single writer makes the chunks conflict and plan again.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:a%d", (i*37)%n+1), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}, ""); err != nil {
					t.Errorf("the writer: %v", err)
					return
				}
			}
		})
		var activated uint64
		wg.Go(func() {
			time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
			engine.AddModule(opa.ModuleSource{Name: "freeze.rego", Source: "package permatrix.systems.celonis_task_mining\n\nviolations contains \"frozen\" if startswith(input.assignment.subject, \"user:frozen\")\n"})
			if _, err := svc.Activate(ctx, b); err != nil {
				t.Error(err)
				return
			}
			activated = svc.Revision()
		})
		var told []pdp.ImportResult
		res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk, Progress: func(r pdp.ImportResult) { told = append(told, r) }})
		close(stop)
		wg.Wait()
		if err == nil {
			t.Logf("round %d: the import ended before the activation: %+v", round, res)
			_ = db.Close()
			continue
		}
		wantCode(t, err, permatrix.EUNPROCESSABLE, "frozen")
		for _, c := range told {
			if c.Revision > activated {
				t.Fatalf("round %d (chunk %d): lines to %d committed at revision %d, after the activation (the store then at %d)", round, chunk, c.LastLine, c.Revision, activated)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d (chunk %d): %+v, activated at %d: %v", round, chunk, res, activated, err)
	}
}

// newSlowService is a service over a new bolt file whose commits take
// 10 ms longer (slowCommits), b active; the file is the caller's to close.
func newSlowService(t *testing.T, b *opa.Bundle) (*bolt.DB, *opa.Engine, *pdp.Service) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine := opa.NewEngine(db)
	svc := pdp.New(&slowCommits{Backend: db}, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return db, engine, svc
}

// slowCommits is a store whose commits take 10 ms longer.
type slowCommits struct{ store.Backend }

func (s *slowCommits) Commit(ctx context.Context, b *store.Batch) (uint64, error) {
	time.Sleep(10 * time.Millisecond)
	return s.Backend.Commit(ctx, b)
}

// The single writer aims at the chunk being planned: it makes members of
// the users of the lines just past the last chunk committed (a user a
// line: a later line of the same user in the chunk is judged in order, and
// refused, whatever verdict its first line took), so that a member is made between a chunk's
// plan and its commit, or between its plan and its plan made again. No
// member holds a permission after it, and the store holds exactly the
// lines up to LastLine.
func TestImportChunksAgainstMembersMadeAhead(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rand.New(rand.NewPCG(43, 4))
	ctx := context.Background()
	refusals := 0
	bundle, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 24 {
		db, _, svc := newSlowService(t, bundle)
		t.Cleanup(func() { _ = db.Close() })
		chunk := []int{64, 100, 40}[round%3]
		const n = 1200
		src := &lines{n: n, line: func(i int) pdp.ImportLine {
			return pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{
				Subject: fmt.Sprintf("user:c%d", i), System: "celonis-task-mining", Permission: "edit_users",
				Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i)}}}
		}}
		var last atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		seed := r.Uint64()
		wg.Go(func() {
			wr := rand.New(rand.NewPCG(seed, 5))
			for {
				select {
				case <-stop:
					return
				default:
				}
				line := int(last.Load()) + 1 + wr.IntN(chunk+chunk/2)
				_, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: fmt.Sprintf("user:c%d", line), System: "celonis-task-mining", Role: "member", Scope: permatrix.ServiceScope}, "")
				if err != nil && permatrix.ErrorCode(err) != permatrix.EUNPROCESSABLE {
					t.Errorf("the writer: %v", err)
					return
				}
			}
		})
		res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk, Progress: func(r pdp.ImportResult) { last.Store(int64(r.LastLine)) }})
		close(stop)
		wg.Wait()
		if err != nil {
			wantCode(t, err, permatrix.EUNPROCESSABLE, "is a Celonis member")
			refusals++
		}
		member, permitted := map[string]bool{}, map[string]int{}
		for _, a := range allAssignments(t, svc) {
			if a.Role == "member" {
				member[a.Subject] = true
			} else {
				permitted[a.Subject]++
			}
		}
		total := 0
		for u, k := range permitted {
			if member[u] {
				t.Fatalf("round %d (chunk %d): %s is a Celonis member holding %d permissions (%+v)", round, chunk, u, k, res)
			}
			total += k
		}
		if total != res.LastLine || res.Imported != total || (err == nil && total != n) {
			t.Fatalf("round %d: result %+v (%v), %d lines stored", round, res, err, total)
		}
	}
	if refusals == 0 {
		t.Fatal("no line was refused: the writer made no member in time")
	}
	t.Logf("%d rounds of 24 refused a line", refusals)
}

// Two imports in chunks at once, granting to the same users, while a
// single writer changes those users: every chunk of each conflicts with
// the chunks of the other and with the writer, plans again holding the
// writers shared, then whole. Neither waits for ever on the other (a
// chunk holding them whole while the other's chunk waits for its chunk
// before), and both are stored whole.
func TestTwoImportsInChunksAtOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := context.Background()
	for round := range 4 {
		svc := newService(t)
		const n, users = 1500, 40
		imp := func(k int) (pdp.ImportResult, error) {
			src := &lines{n: n, line: func(i int) pdp.ImportLine {
				return pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{
					Subject: fmt.Sprintf("user:c%d", i%users), System: "celonis-task-mining", Permission: "edit_users",
					Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("i%d-p%d", k, i)}}}
			}}
			return svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: []int{64, 100, 250}[(round+k)%3]})
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := grantAndRevoke(ctx, svc, permatrix.Assignment{Subject: fmt.Sprintf("user:c%d", i%users), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}); err != nil {
					t.Errorf("the writer: %v", err)
					return
				}
			}
		})
		type outcome struct {
			res pdp.ImportResult
			err error
		}
		done := make(chan outcome, 2)
		for k := range 2 {
			go func() {
				res, err := imp(k)
				done <- outcome{res, err}
			}()
		}
		for range 2 {
			select {
			case o := <-done:
				if o.err != nil || o.res.Imported != n {
					t.Fatalf("round %d: an import: %+v %v", round, o.res, o.err)
				}
			case <-time.After(2 * time.Minute):
				buf := make([]byte, 1<<22)
				t.Fatalf("round %d: an import is not answered after 2 minutes:\n%s", round, buf[:runtime.Stack(buf, true)])
			}
		}
		close(stop)
		wg.Wait()
		if c := count(t, svc); c != 2*n {
			t.Fatalf("round %d: the store holds %d assignments, want %d", round, c, 2*n)
		}
	}
}

// An import in chunks assigning custom roles while a writer deletes and
// defines again the roles of the lines just past the last chunk committed:
// a role is deleted only while no assignment uses it, and an assignment is
// stored only of a role stored (a line whose role is deleted when its
// chunk commits is refused, and the import stops there); after both, no
// stored assignment names a role the store does not hold, and the store
// holds the lines up to LastLine.
func TestImportChunksAgainstRolesDeleted(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rand.New(rand.NewPCG(43, 6))
	ctx := context.Background()
	const n = 600
	role := func(i int) permatrix.Role {
		return permatrix.Role{System: "blueprism", Name: fmt.Sprintf("r%d", i), Permissions: []string{"view_dashboards"}}
	}
	deleted, refused := 0, 0
	for round := range 12 {
		_, svc := newBoltService(t)
		for i := 1; i <= n; i++ {
			if _, err := svc.PutRole(ctx, role(i), ""); err != nil {
				t.Fatal(err)
			}
		}
		chunk := []int{64, 100, 30}[round%3]
		src := &lines{n: n, line: func(i int) pdp.ImportLine {
			return pdp.ImportLine{Line: i, Assignment: permatrix.Assignment{Subject: fmt.Sprintf("user:b%d", i), System: "blueprism", Role: role(i).Name, Scope: permatrix.ServiceScope}}
		}}
		var last atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		seed := r.Uint64()
		wg.Go(func() {
			wr := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(last.Load()) + 1 + wr.IntN(chunk+chunk/2)
				if i > n {
					continue
				}
				_, err := svc.DeleteRole(ctx, "blueprism", role(i).Name, "")
				switch {
				case err == nil:
					deleted++
					if _, err := svc.PutRole(ctx, role(i), ""); err != nil {
						t.Errorf("define %d again: %v", i, err)
						return
					}
				case permatrix.ErrorCode(err) != permatrix.ECONFLICT:
					t.Errorf("delete %d: %v", i, err)
					return
				}
			}
		})
		res, err := svc.ImportStream(ctx, src.next, pdp.ImportOptions{Chunk: chunk, Progress: func(r pdp.ImportResult) { last.Store(int64(r.LastLine)) }})
		close(stop)
		wg.Wait()
		if err != nil { // the line's role was deleted, not yet defined again
			wantCode(t, err, permatrix.EUNPROCESSABLE, "unknown role")
			refused++
		}
		roles := map[string]bool{}
		for i := 1; i <= n; i++ {
			if _, err := svc.Role(ctx, "blueprism", role(i).Name); err == nil {
				roles[role(i).Name] = true
			}
		}
		list := allAssignments(t, svc)
		for _, a := range list {
			if !roles[a.Role] {
				t.Fatalf("round %d: %s holds role %s, which the store does not hold", round, a.Subject, a.Role)
			}
		}
		if len(list) != res.LastLine || res.Imported != res.LastLine || (err == nil && res.LastLine != n) {
			t.Fatalf("round %d: %d assignments stored, result %+v", round, len(list), res)
		}
	}
	if deleted == 0 {
		t.Fatal("no role was deleted: the writer met no line before its chunk")
	}
	t.Logf("%d roles deleted and defined again, %d imports refused a line", deleted, refused)
}
