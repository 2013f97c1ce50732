package pdp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// change is one change of a write: the input its verdict judges — known
// beforehand, or built from the state the change meets (input) —, the
// import line it comes from if it does (fromLine, line: where), and its
// plan.
type change struct {
	known    map[string]any
	input    func(tx *store.Tx) (map[string]any, error)
	fromLine bool
	line     int
	apply    func(tx *store.Tx) error
	// held, if set, is told whether apply planned nothing: what it
	// writes is stored already (an import line's record). The write
	// notes it, not a closure around apply: that was an allocation a
	// line.
	held *bool
	// assignment, if set, is what the change stores (assign): its plan
	// is made from it, with the id it was given, and its verdict input
	// is assignIn, in the change — neither a closure nor an input boxed
	// in known, an allocation each an import line.
	assignment *permatrix.Assignment
	given      string
	assignIn   opa.AssignInput
}

// verdictIn is the change's input known beforehand: its assignIn, by
// address (the change is not copied while its verdict is judged), for an
// assignment; else known.
func (c *change) verdictIn() any {
	if c.assignment != nil {
		return &c.assignIn
	}
	return c.known
}

// plan plans the change in tx.
func (c *change) plan(tx *store.Tx) error {
	if c.assignment != nil {
		c.assignment.ID = c.given
		return tx.CreateAssignment(c.assignment)
	}
	return c.apply(tx)
}

// where is where the change comes from ("line 3"), "" for a write's own.
// It is formatted only for a refusal: an import of a million lines made
// a million of them for none.
func (c *change) where() string {
	if !c.fromLine {
		return ""
	}
	return fmt.Sprintf("line %d", c.line)
}

// prefix is where, as a refusal's message starts ("line 3: "), or "".
func (c *change) prefix() string {
	if !c.fromLine {
		return ""
	}
	return c.where() + ": "
}

// write runs the write protocol (package comment) for changes, in order, as
// one commit: each is judged against the state as it is once the changes
// before it are made, then planned. Many changes (an import) are judged
// ahead on every core (prejudge.go); the result is the same.
func (s *Service) write(ctx context.Context, changes ...change) (uint64, error) {
	_, rev, err := s.writeSome(ctx, false, changes, nil)
	return rev, err
}

// writeSome is write, except that with some, on a backend whose commits
// have a size limit (store.Bounded: etcd), it commits the first n changes
// that fit in one commit — at least one — and leaves the rest. Without
// some, changes that do not fit one commit are refused whole (ETOOLARGE).
// chunk, if not nil, is the import's chunk the changes store (import.go):
// its plan is made while the chunk before it commits, and it commits only
// after that one did.
func (s *Service) writeSome(ctx context.Context, some bool, changes []change, chunk *chunkWrite) (n int, rev uint64, err error) {
	bounded, _ := s.backend.(store.Bounded)
	changes = withAsserted(ctx, changes)
	// A write plans again after a conflict (store.Update). One of many
	// changes takes long to plan, and a steady stream of small writes to
	// one unit it reads would make it lose every race: after its first,
	// it plans again with this process's other writes held back. So does
	// an import's, however few its lines: a chunk of 63 (fewer than
	// minAhead) lost to six writers of one of its users a hundred times in
	// a row, and the import ended in 503 (TestImportSmallChunksNotStarvedByWrites).
	mayPlanAlone := len(changes) >= minAhead || (len(changes) > 0 && changes[0].fromLine)
	s.writers.RLock()
	alone, plans := false, 0
	defer func() {
		if alone {
			s.writers.Unlock()
		} else {
			s.writers.RUnlock()
		}
	}()
	var judged *opa.Policy // the last plan's
	var earlier *ahead     // the last plan's judging ahead
	var settle func() error
	if chunk != nil {
		settle = func() error { return chunk.settle(s, judged) }
	}
	// An import's chunk is planned while the chunk before it commits, and
	// conflicts with it when one of its lines read what that one wrote
	// (import.go): its second plan, made after that commit, follows no
	// lost race. Taken whole there, s.writers waited for the next chunk's
	// plan and held it back, with every single write, until this chunk had
	// planned again and committed: the pipeline of chunks stopped, a core
	// idle (docs/performance.md, 2026-11-29 05:25). Its third plan is held
	// as any write's second.
	//
	// A chunk whose chunk before committed before its first plan's snapshot
	// (the first chunk, one planned late) conflicted with another write: a
	// lost race, its second plan held whole as any write's. Held shared, a
	// chunk whose plan takes a third of store.RetryBudget lost twice to a
	// stream of writes and ran out of it (TestChunkPlannedAgainAfterALostRaceHoldsWritersWhole).
	// So does a chunk whose first plan read a unit another write changed,
	// whether or not the chunk before committed after its snapshot too
	// (TestChunkLosingToAWriteMidImportHoldsWritersWhole): a unit's last
	// change at another revision than the chunk before's says so.
	var first uint64 // the first plan's revision
	races := 1
	rev, err = store.UpdateSettled(ctx, s.backend, func(tx *store.Tx) error {
		switch plans++; plans {
		case 1:
			first = tx.Revision()
		case 2:
			if chunk != nil && chunk.beforeRev > first &&
				!s.backend.Changes().ChangedAfterExcept(first, chunk.beforeRev, tx.LostReads()) {
				races = 2
			}
		}
		if plans > races && !alone && mayPlanAlone {
			s.writers.RUnlock()
			s.writers.Lock()
			alone = true
			// The writes that held it are in tx's snapshot or not;
			// if not, this plan conflicts once more and the next is
			// made with nothing in between.
		}
		// The policy active while s.writers is held: a bundle is
		// swapped in only with s.writers held whole (New), so the
		// bundle that judges a write is the one active when it
		// commits, never one swapped out meanwhile.
		p, err := s.policy()
		if err != nil {
			return err
		}
		judged = p
		n = len(changes)
		if len(changes) >= minAhead {
			tx.Grow(plannedOps(changes))
		}
		ahead := s.prejudge(ctx, p, tx.Revision(), changes, earlier)
		defer ahead.stop()
		earlier = ahead
		for i := range changes {
			c := &changes[i]
			var mark store.Mark
			if bounded != nil {
				mark = tx.Mark()
			}
			violations, forbidden, err := ahead.verdict(i, tx)
			if errors.Is(err, errNotAhead) {
				in := c.verdictIn()
				if c.input != nil {
					if in, err = c.input(tx); err != nil {
						return prefixed(c.prefix(), err)
					}
				}
				violations, forbidden, err = p.Verdict(ctx, tx.View(), in)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.Error("write verdict failed", "err", err)
				return permatrix.Errorf(permatrix.EINTERNAL, "evaluation of the write rules failed")
			}
			if len(violations) > 0 {
				return &permatrix.Error{Code: permatrix.EUNPROCESSABLE, Message: c.prefix() + violations[0], Details: violations}
			}
			if len(forbidden) > 0 {
				return &permatrix.Error{Code: permatrix.EFORBIDDEN, Message: c.prefix() + forbidden[0], Details: forbidden}
			}
			var before store.Mark
			if c.held != nil {
				before = tx.Mark()
			}
			if err := c.plan(tx); err != nil {
				return prefixed(c.prefix(), err)
			}
			if c.held != nil {
				*c.held = !tx.PlannedSince(before)
			}
			if bounded == nil {
				continue
			}
			if err := bounded.Fits(tx.Size()); err != nil {
				switch {
				case i == 0:
					return prefixed(c.prefix(), err)
				case !some:
					return permatrix.Errorf(permatrix.ETOOLARGE,
						"an all-or-nothing import is one commit, and from %s on this one does not fit one: %s; or import in chunks (chunk=N), each committed in as many commits as it takes",
						c.where(), permatrix.ErrorMessage(err))
				}
				// The commit is full: this change and the rest are
				// for the next one.
				tx.Rollback(mark)
				n = i
				return nil
			}
		}
		return nil
	}, settle)
	if err != nil {
		return 0, 0, err
	}
	return n, rev, nil
}

// plannedOps is about how many operations changes plan: an import chunk's
// lists are grown once to it (Tx.Grow), not by doubling — each doubling a
// copy, 2 % of an import's CPU.
func plannedOps(changes []change) int {
	n := 0
	for i := range changes {
		a := changes[i].assignment
		switch {
		case a == nil:
			n += 2 // a membership's two keys; a role's or a project's one
		case a.Scope.IsService():
			n += 3 // its grant, its id, its role's use (or a permission)
		default:
			n += 4 // and its scope's use
		}
	}
	return n
}

func prefixed(prefix string, err error) error {
	if e, ok := err.(*permatrix.Error); ok && prefix != "" {
		return &permatrix.Error{Code: e.Code, Message: prefix + e.Message, Details: e.Details}
	}
	return err
}

// verdictInput is the input of data.permatrix.admin.verdict for one write
// (the shapes are listed in policies/permatrix/admin/admin.rego): the op,
// what it is about under key, and the actor unless the operator writes.
// Every write builds its verdict input here, but an assignment's: its
// opa.AssignInput is the same input as a struct (assign).
func verdictInput(op, actor, key string, about any) map[string]any {
	in := map[string]any{"op": op, key: about}
	if actor != "" {
		in["actor"] = actor
	}
	return in
}

// Asserting is ctx carrying the groups a verified user token asserts for
// its user (identity's groups claim) to the writes made with it: the
// verdict of a change that user makes reads them as input.groups
// (lib.asserted_groups), as the user's checks read them. Without them a
// user was judged outside groups its checks put it in: it could assign a
// Blue Prism role to its own group. The operator, and an actor the admin
// token names, assert none.
func Asserting(ctx context.Context, user string, groups []string) context.Context {
	if len(groups) == 0 {
		return ctx
	}
	gs := make([]any, len(groups))
	for i, g := range groups {
		gs[i] = g
	}
	return context.WithValue(ctx, assertedKey{}, asserted{user: user, groups: gs})
}

type assertedKey struct{}

// asserted is what Asserting carries.
type asserted struct {
	user   string
	groups []any
}

// withAsserted is changes with the groups ctx asserts (Asserting) in the
// verdict input of each change its user makes.
func withAsserted(ctx context.Context, changes []change) []change {
	as, ok := ctx.Value(assertedKey{}).(asserted)
	if !ok {
		return changes
	}
	add := func(in map[string]any) map[string]any {
		if in["actor"] != as.user {
			return in
		}
		out := maps.Clone(in)
		out["groups"] = as.groups
		return out
	}
	out := make([]change, len(changes))
	for i, c := range changes {
		if c.known != nil {
			c.known = add(c.known)
		}
		if c.assignment != nil && c.assignIn.Actor != "" && c.assignIn.Actor == as.user { // as the map's: no actor is the operator
			c.assignIn.Groups = as.groups
		}
		if input := c.input; input != nil {
			c.input = func(tx *store.Tx) (map[string]any, error) {
				in, err := input(tx)
				if err != nil {
					return nil, err
				}
				return add(in), nil
			}
		}
		out[i] = c
	}
	return out
}

func validActor(actor string) error {
	if actor != "" && !permatrix.ValidID(actor) {
		return permatrix.Errorf(permatrix.EINVALID, "actor must be a user id of 1 to %d bytes", permatrix.MaxIDBytes)
	}
	return nil
}

// assign is the change that stores a on behalf of actor. Each plan starts
// from the id a was given: a plan that is taken back (a conflict, a full
// commit) must not leave the id it found or reserved on a. Its verdict
// input holds a copy of a, which the write rules read as a.Value() (opa's
// conversion builds it from the struct), in an opa.AssignInput, not a map.
func assign(a *permatrix.Assignment, actor string) change {
	return change{assignment: a, given: a.ID, assignIn: opa.AssignInput{Actor: actor, Assignment: *a}}
}

// Assign stores an assignment on behalf of actor ("" for the operator).
func (s *Service) Assign(ctx context.Context, a permatrix.Assignment, actor string) (permatrix.Assignment, uint64, error) {
	if err := a.Validate(); err != nil {
		return a, 0, err
	}
	if err := validActor(actor); err != nil {
		return a, 0, err
	}
	rev, err := s.write(ctx, assign(&a, actor))
	return a, rev, err
}

// Unassign removes an assignment on behalf of actor.
func (s *Service) Unassign(ctx context.Context, id, actor string) (uint64, error) {
	if err := permatrix.CheckID("assignment id", id); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		input: func(tx *store.Tx) (map[string]any, error) {
			a, err := tx.Assignment(id)
			if err != nil {
				return nil, err
			}
			return verdictInput("unassign", actor, "assignment", a.Value()), nil
		},
		apply: func(tx *store.Tx) error { _, err := tx.DeleteAssignment(id); return err },
	})
}

// knownFilter refuses a listing's system or scope type that the bundle
// does not have: a typo (?scope_type=proces_group) matched nothing, and
// the empty listing told the caller nothing was there. A system the bundle
// does not have is left to the listing (retired): a bundle that dropped
// it left its assignments stored, to be listed and deleted.
func knownFilter(c permatrix.Catalog, f permatrix.AssignmentFilter) (retired bool, err error) {
	if f.System != "" {
		sys, ok := c[f.System]
		if !ok {
			if !permatrix.ValidID(f.System) {
				return false, permatrix.Errorf(permatrix.EINVALID, "invalid system id %q", f.System)
			}
			return true, nil
		}
		if f.ScopeType != "" && !sys.HasScopeType(f.ScopeType) {
			return false, permatrix.Errorf(permatrix.EINVALID, "system %q has no scope type %q (has: %v)", sys.ID, f.ScopeType, sys.ScopeTypes)
		}
		return false, nil
	}
	if f.ScopeType != "" && !slices.ContainsFunc(c.IDs(), func(id string) bool { return c[id].HasScopeType(f.ScopeType) }) {
		return false, permatrix.Errorf(permatrix.EINVALID, "no system has scope type %q", f.ScopeType)
	}
	return false, nil
}

// snapshot runs fn on a snapshot of the applied state.
func (s *Service) snapshot(ctx context.Context, fn func(store.Snapshot) error) error {
	snap, err := s.view(ctx, 0)
	if err != nil {
		return err
	}
	defer snap.Close()
	return fn(snap)
}

// Assignments lists assignments, a page at a time. A system filter names a
// system of the bundle or one the store holds assignments of (a bundle
// that dropped a system left them, to be listed and deleted): any other
// matches nothing, and an empty listing of a misspelt system told the
// caller it held nothing there (EINVALID, as a check's or the permissions'
// unknown system; heldSystem says when that is known). A service scope
// filter has no id, as the service scope has none (Scope.Validate): with
// one it would match nothing, read every assignment to say so.
func (s *Service) Assignments(ctx context.Context, f permatrix.AssignmentFilter) (list []permatrix.Assignment, next string, err error) {
	if sc := (permatrix.Scope{Type: f.ScopeType, ID: f.ScopeID}); sc.IsService() {
		if err := sc.Validate("scope_type", "scope_id"); err != nil {
			return nil, "", err
		}
	}
	retired := false
	var catalog permatrix.Catalog
	if f.System != "" || f.ScopeType != "" {
		p, err := s.policy()
		if err != nil {
			return nil, "", err
		}
		catalog = p.Catalog
		if retired, err = knownFilter(catalog, f); err != nil {
			return nil, "", err
		}
	}
	err = s.snapshot(ctx, func(snap store.Snapshot) error {
		if list, next, err = store.Assignments(snap, f); err != nil || len(list) > 0 || !retired {
			return err
		}
		held, err := s.heldSystem(snap, f, next)
		if err == nil && !held {
			err = catalog.UnknownSystem(f.System)
		}
		return err
	})
	return list, next, err
}

// heldSystem says whether a system the bundle does not have, whose
// listing's page (f, then next) found nothing, is one a bundle dropped
// whose assignments are stored (else a typo: 400). Whatever the other
// filters, one assignment of the system says so: a role's, or one below
// the service scope, in an index; else one of the systems of every
// stored assignment (assignedSystems: one pass of the assignment index a
// store revision, however many listings ask). Filtered by the system
// alone from the first id, a page that read to the end read them all
// already. It read one page of the largest limit from the first id, and
// took the system as held past it: on a store larger than a page, a
// misspelt system listed empty pages, each with a cursor to the next
// (TestUnknownSystemFilterOnALargeStore).
func (s *Service) heldSystem(snap store.Snapshot, f permatrix.AssignmentFilter, next string) (bool, error) {
	if f == (permatrix.AssignmentFilter{System: f.System, Limit: f.Limit}) && next == "" {
		return false, nil
	}
	if held, err := store.HoldsIndexedAssignmentsOf(snap, f.System); err != nil || held {
		return held, err
	}
	return s.assigned.holds(snap, f.System)
}

// assignedSystems is store.AssignedSystems at one store revision, read
// again when a listing asks at another: a misspelt system costs one pass
// of the assignment index a revision, not one a request (listings wait
// for the one that reads). On a large store (large index entries or more)
// that pass is not made again until assignedSystemsGap times its last
// duration has passed: 0.22–0.38 s for 1M assignments (docs/performance.md),
// and a client writing between typos had it made at every request.
// Inside the gap a revision other than the one read is answered as held:
// an empty page, as a listing is never refused for what it might find.
type assignedSystems struct {
	mu      sync.Mutex
	rev     uint64
	systems map[string]bool  // nil: not read yet
	entries int              // index entries the last read passed over
	readAt  time.Time        // when the last read ended
	took    time.Duration    // how long the last read took
	large   int              // 0: assignedSystemsLarge; a test's own
	now     func() time.Time // nil: time.Now; a test's clock
}

const (
	// assignedSystemsLarge index entries (some milliseconds a pass) make
	// a store large enough for its passes to be spaced out.
	assignedSystemsLarge = 100_000
	// assignedSystemsGap: a large store's passes take at most a tenth of
	// one core's time, however often the revision changes.
	assignedSystemsGap = 9
)

// holds says whether an assignment of system is stored at snap's revision
// (true also where that is not read again yet: assignedSystems).
func (a *assignedSystems) holds(snap store.Snapshot, system string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	large := a.large
	if large == 0 {
		large = assignedSystemsLarge
	}
	if a.systems != nil && a.rev != snap.Revision() && a.entries >= large &&
		now().Sub(a.readAt) < assignedSystemsGap*a.took {
		return true, nil
	}
	if a.systems == nil || a.rev != snap.Revision() {
		start := now()
		systems, entries, err := store.AssignedSystems(snap)
		if err != nil {
			return false, err
		}
		a.readAt = now()
		a.systems, a.rev, a.entries, a.took = systems, snap.Revision(), entries, max(a.readAt.Sub(start), time.Millisecond)
	}
	return a.systems[system], nil
}

// Assignment returns one assignment.
func (s *Service) Assignment(ctx context.Context, id string) (a permatrix.Assignment, err error) {
	if err := permatrix.CheckID("assignment id", id); err != nil {
		return a, err
	}
	err = s.snapshot(ctx, func(snap store.Snapshot) error { a, err = store.Assignment(snap, id); return err })
	return a, err
}

// ImportLine is one record of an import — an assignment, or (the lines of
// an export, store.WriteRecords) one of Membership, Role and Project —, the
// actor it is written on behalf of ("" for the operator) and its line in
// the import.
type ImportLine struct {
	Line       int
	Assignment permatrix.Assignment
	Membership *permatrix.Membership
	Role       *permatrix.Role
	Project    *permatrix.Project
	Actor      string
}

// heldBytes measures the line's strings: what it holds until its commit,
// near enough (MaxHeldImportBytes).
func (l *ImportLine) heldBytes() int {
	n := len(l.Actor)
	switch {
	case l.Membership != nil:
		n += len(l.Membership.Group) + len(l.Membership.User)
	case l.Role != nil:
		n += len(l.Role.System) + len(l.Role.Name)
		for _, p := range l.Role.Permissions {
			n += len(p)
		}
	case l.Project != nil:
		n += len(l.Project.System) + len(l.Project.ID) + len(l.Project.CreatedBy) + len(l.Project.Kind)
	default:
		a := &l.Assignment
		n += len(a.ID) + len(a.Subject) + len(a.System) + len(a.Role) + len(a.Permission) + len(a.Scope.Type) + len(a.Scope.ID)
	}
	return n
}

// validate checks the line's shape and actor; the error names the line.
// A project registered without created_by is the actor's, as PutProject
// registers it.
func (l *ImportLine) validate() error {
	var err error
	switch {
	case l.Membership != nil:
		err = l.Membership.Validate()
	case l.Role != nil:
		err = l.Role.Validate()
	case l.Project != nil:
		if l.Project.CreatedBy == "" {
			l.Project.CreatedBy = l.Actor
		}
		err = l.Project.Validate()
	default:
		err = l.Assignment.Validate()
	}
	if err == nil {
		err = validActor(l.Actor)
	}
	if err != nil {
		e := err.(*permatrix.Error)
		return permatrix.Errorf(e.Code, "line %d: %s", l.Line, e.Message)
	}
	return nil
}

// change is the line's change (judged by the write rules as the endpoint
// of its kind judges it), which sets *held when what it writes is stored
// already (nothing to write). A project line registers the project only:
// its creator's role on it, where the vendor gives one, is the creator's
// assignment line (an export has it when the creator holds it still; the
// role given again would undo its removal and take an id a later line
// names).
func (l *ImportLine) change(p *opa.Policy, held *bool) (change, error) {
	var c change
	switch {
	case l.Membership != nil:
		m := *l.Membership
		c = change{
			known: verdictInput("add_member", l.Actor, "membership", m.Value()),
			apply: func(tx *store.Tx) error { return tx.AddMember(m) },
		}
	case l.Role != nil:
		r := l.Role.Normal()
		c = change{
			known: roleInput("define_role", r, l.Actor),
			apply: func(tx *store.Tx) error { return tx.PutRole(r) },
		}
	case l.Project != nil:
		pr := *l.Project
		if sys, ok := p.Catalog[pr.System]; ok && !sys.HasScopeType("project") {
			return change{}, permatrix.Errorf(permatrix.EUNPROCESSABLE, "line %d: system %q has no projects", l.Line, pr.System)
		}
		c = change{
			known: verdictInput("register_project", l.Actor, "project", map[string]any{"system": pr.System, "id": pr.ID, "created_by": pr.CreatedBy, "kind": pr.Kind}),
			apply: func(tx *store.Tx) error { return tx.PutProject(pr) },
		}
	default:
		c = assign(&l.Assignment, l.Actor)
	}
	c.fromLine, c.line = true, l.Line
	// Whether the line's record was stored already (in the plan, as the
	// write finds it): such a line plans nothing — AddMember, PutRole,
	// PutProject and CreateAssignment each plan nothing for a record stored
	// as it is.
	c.held = held
	return c, nil
}

// Import stores every assignment or none (one commit). Each is judged by
// the vendor rules, with its own actor, against the store as it is with the
// lines before it made: the first refused line fails the import, and the
// error names its line.
func (s *Service) Import(ctx context.Context, lines []ImportLine) (int, uint64, error) {
	n, _, rev, err := s.importLines(ctx, lines, false, nil)
	return n, rev, err
}

// importLines is Import; with some, it commits the lines that fit one
// commit of the store (writeSome) and returns how many, and how many of
// them were stored already (nothing to write) — at most
// Bounded.MaxOps: a line that changes anything is at least one operation,
// so no more are judged for one commit than it could hold. chunk is
// writeSome's.
func (s *Service) importLines(ctx context.Context, lines []ImportLine, some bool, chunk *chunkWrite) (n, stored int, rev uint64, err error) {
	if b, ok := s.backend.(store.Bounded); ok && some && len(lines) > b.MaxOps() {
		lines = lines[:max(1, b.MaxOps())]
	}
	p, err := s.policy()
	if err != nil {
		return 0, 0, 0, err
	}
	changes := make([]change, len(lines))
	held := make([]bool, len(lines))
	for i := range lines {
		l := &lines[i]
		if err := l.validate(); err != nil {
			return 0, 0, 0, err
		}
		if changes[i], err = l.change(p, &held[i]); err != nil {
			return 0, 0, 0, err
		}
	}
	if n, rev, err = s.writeSome(ctx, some, changes, chunk); err != nil {
		return 0, 0, 0, err
	}
	for _, h := range held[:n] {
		if h {
			stored++
		}
	}
	return n, stored, rev, nil
}

// Export writes the whole store as OPA data, {"store": …}, at one revision.
func (s *Service) Export(ctx context.Context, w io.Writer) (uint64, error) {
	return s.exportAt(ctx, w, store.WriteDocument)
}

// ExportRecords writes every record of the store as NDJSON lines an import
// takes (store.WriteRecords), at one revision.
func (s *Service) ExportRecords(ctx context.Context, w io.Writer) (uint64, error) {
	return s.exportAt(ctx, w, store.WriteRecords)
}

// exportAt writes the store with write from one snapshot, whose revision
// it returns.
func (s *Service) exportAt(ctx context.Context, w io.Writer, write func(io.Writer, store.Snapshot) error) (uint64, error) {
	var rev uint64
	err := s.snapshot(ctx, func(snap store.Snapshot) error {
		rev = snap.Revision()
		return write(w, snap)
	})
	return rev, err
}

// AddMember puts a user in a group (idempotent) on behalf of actor. A
// member holds what the group holds, so the write rules judge it as
// assigning each of the group's holdings to the user.
func (s *Service) AddMember(ctx context.Context, m permatrix.Membership, actor string) (uint64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		known: verdictInput("add_member", actor, "membership", m.Value()),
		apply: func(tx *store.Tx) error { return tx.AddMember(m) },
	})
}

// RemoveMember takes a user out of a group on behalf of actor (judged as
// removing each of the group's holdings from the user).
func (s *Service) RemoveMember(ctx context.Context, m permatrix.Membership, actor string) (uint64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		known: verdictInput("remove_member", actor, "membership", m.Value()),
		apply: func(tx *store.Tx) error { return tx.RemoveMember(m) },
	})
}

// MembersPage lists at most limit users of a group after the user cursor
// ("": from the first), in order — limit 0 is the listings' default page
// (permatrix.PageLimit) —; next is the cursor of the next page, "" on the
// last.
func (s *Service) MembersPage(ctx context.Context, group, cursor string, limit int) (users []string, next string, rev uint64, err error) {
	if err := membersQuery(group, cursor); err != nil {
		return nil, "", 0, err
	}
	if limit, err = permatrix.PageLimit(limit); err != nil {
		return nil, "", 0, err
	}
	err = s.snapshot(ctx, func(snap store.Snapshot) error {
		rev = snap.Revision()
		users, next, err = store.MembersPage(snap, group, cursor, limit)
		return err
	})
	return users, next, rev, err
}

func membersQuery(group, cursor string) error {
	if err := permatrix.CheckID("group", group); err != nil {
		return err
	}
	if cursor != "" {
		return permatrix.CheckID("cursor", cursor)
	}
	return nil
}

// storedSystem checks the system of a read or removal of a stored custom
// role or project: one of the bundle, or one it does not have (retired: a
// bundle that dropped it left its roles and projects stored, to be read and
// removed as its assignments are; unknown is then the 404 of the system,
// naming those the bundle has). What a retired system's record is not
// stored is unknownStored's 404.
func (s *Service) storedSystem(id string) (unknown, err error) {
	_, err = s.knownSystem(id)
	if permatrix.ErrorCode(err) == permatrix.ENOTFOUND && permatrix.ValidID(id) {
		return err, nil
	}
	return nil, err
}

// unknownStored is err, but for a system the bundle does not have
// (storedSystem's unknown) whose record what is not stored: the system is
// unknown, as a typo of a known one is (404, "unknown system", naming the
// systems).
func unknownStored(unknown error, what string, err error) error {
	if unknown != nil && permatrix.ErrorCode(err) == permatrix.ENOTFOUND {
		return permatrix.Errorf(permatrix.ENOTFOUND, "%s; no %s of it is stored", permatrix.ErrorMessage(unknown), what)
	}
	return err
}

func (s *Service) knownSystem(id string) (*permatrix.System, error) {
	p, err := s.policy()
	if err != nil {
		return nil, err
	}
	sys, ok := p.Catalog[id]
	if !ok {
		return nil, p.Catalog.NoSuchSystem(id)
	}
	return sys, nil
}

func roleInput(op string, r permatrix.Role, actor string) map[string]any {
	return verdictInput(op, actor, "role", map[string]any{"system": r.System, "name": r.Name, "permissions": r.Value()["permissions"]})
}

// PutRole defines or replaces a custom role on behalf of actor.
func (s *Service) PutRole(ctx context.Context, r permatrix.Role, actor string) (uint64, error) {
	if _, err := s.knownSystem(r.System); err != nil {
		return 0, err
	}
	if err := r.Validate(); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		known: roleInput("define_role", r.Normal(), actor),
		apply: func(tx *store.Tx) error { return tx.PutRole(r) },
	})
}

// Role returns a custom role, also of a system the bundle no longer has
// while the role is stored.
func (s *Service) Role(ctx context.Context, system, name string) (r permatrix.Role, err error) {
	unknown, err := s.storedSystem(system)
	if err != nil {
		return r, err
	}
	if err := permatrix.CheckID("role", name); err != nil {
		return r, err
	}
	err = s.snapshot(ctx, func(snap store.Snapshot) error { r, err = store.Role(snap, system, name); return err })
	return r, unknownStored(unknown, fmt.Sprintf("role %q", name), err)
}

// DeleteRole removes a custom role that no assignment uses, also one of a
// system the bundle no longer has (the write rules let only the operator
// remove those).
func (s *Service) DeleteRole(ctx context.Context, system, name, actor string) (uint64, error) {
	unknown, err := s.storedSystem(system)
	if err != nil {
		return 0, err
	}
	if err := permatrix.CheckID("role", name); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		input: func(tx *store.Tx) (map[string]any, error) {
			r, err := tx.Role(system, name)
			if err != nil {
				return nil, unknownStored(unknown, fmt.Sprintf("role %q", name), err)
			}
			return roleInput("delete_role", r, actor), nil
		},
		apply: func(tx *store.Tx) error { return tx.DeleteRole(system, name) },
	})
}

// PutProject registers a project. Where the vendor gives a project's creator
// a role on it (catalog creator_role), that assignment is made in the same
// commit. An actor registers projects as itself: without created_by the
// actor is the creator (the write rules refuse naming anyone else).
func (s *Service) PutProject(ctx context.Context, p permatrix.Project, actor string) (permatrix.Project, uint64, *permatrix.Assignment, error) {
	sys, err := s.knownSystem(p.System)
	if err != nil {
		return p, 0, nil, err
	}
	if err := validActor(actor); err != nil {
		return p, 0, nil, err
	}
	if p.CreatedBy == "" {
		p.CreatedBy = actor
	}
	if err := p.Validate(); err != nil {
		return p, 0, nil, err
	}
	if !sys.HasScopeType("project") {
		return p, 0, nil, permatrix.Errorf(permatrix.EUNPROCESSABLE, "system %q has no projects", p.System)
	}
	var creator *permatrix.Assignment
	rev, err := s.write(ctx, change{
		known: verdictInput("register_project", actor, "project", map[string]any{"system": p.System, "id": p.ID, "created_by": p.CreatedBy, "kind": p.Kind}),
		apply: func(tx *store.Tx) error {
			_, err := tx.Project(p.System, p.ID)
			registered := err == nil
			if err != nil && permatrix.ErrorCode(err) != permatrix.ENOTFOUND {
				return err
			}
			if err := tx.PutProject(p); err != nil {
				return err
			}
			creator = nil
			if sys.CreatorRole == "" || p.CreatedBy == "" {
				return nil
			}
			creator = &permatrix.Assignment{
				Subject: permatrix.UserPrefix + p.CreatedBy, System: p.System, Role: sys.CreatorRole,
				Scope: permatrix.Scope{Type: "project", ID: p.ID},
			}
			if !registered {
				return tx.CreateAssignment(creator)
			}
			// The vendor gives the role on creating a project: once, when
			// it is first registered. Registering it again (its kind
			// changed, or the same body resent) answers the creator's
			// assignment while it holds it and never makes it again: that
			// gave back a role an administrator had removed.
			held, err := tx.Held(creator)
			if !held {
				creator = nil
			}
			return err
		},
	})
	if err != nil {
		return p, 0, nil, err
	}
	return p, rev, creator, nil
}

// DeleteProject removes the registration of a project on which no
// assignment is made, also of a system the bundle no longer has; the write
// rules let only the operator.
func (s *Service) DeleteProject(ctx context.Context, system, id, actor string) (uint64, error) {
	unknown, err := s.storedSystem(system)
	if err != nil {
		return 0, err
	}
	if err := permatrix.CheckID("project id", id); err != nil {
		return 0, err
	}
	if err := validActor(actor); err != nil {
		return 0, err
	}
	return s.write(ctx, change{
		input: func(tx *store.Tx) (map[string]any, error) {
			p, err := tx.Project(system, id)
			if err != nil {
				return nil, unknownStored(unknown, fmt.Sprintf("project %q", id), err)
			}
			return verdictInput("delete_project", actor, "project", map[string]any{"system": p.System, "id": p.ID, "created_by": p.CreatedBy, "kind": p.Kind}), nil
		},
		apply: func(tx *store.Tx) error { return tx.DeleteProject(system, id) },
	})
}

// Project returns a registered project, also of a system the bundle no
// longer has while the project is stored.
func (s *Service) Project(ctx context.Context, system, id string) (p permatrix.Project, err error) {
	unknown, err := s.storedSystem(system)
	if err != nil {
		return p, err
	}
	if err := permatrix.CheckID("project id", id); err != nil {
		return p, err
	}
	err = s.snapshot(ctx, func(snap store.Snapshot) error { p, err = store.Project(snap, system, id); return err })
	return p, unknownStored(unknown, fmt.Sprintf("project %q", id), err)
}
