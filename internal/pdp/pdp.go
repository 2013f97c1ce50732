// Package pdp is the policy decision point: it answers checks with the
// active policy over a snapshot of the assignment store, and owns the write
// protocol that judges and commits changes (store.Update, with the vendor
// rules as the judge):
//
//  1. a snapshot of the applied state at revision R;
//  2. each change of the write is judged by data.permatrix.admin.verdict
//     against the state as it is then (the snapshot with the write's earlier
//     changes over it), and planned; every read is recorded;
//  3. one commit, conditional on nothing read having changed after R,
//     durable and visible at the revision it returns; on a conflict, back
//     to 1 with a fresh verdict.
//
// So a check that starts after a write returned revision N is decided at
// revision N or later, and two writes committed concurrently are never a
// pair the rules would refuse one after the other. Checks take no lock:
// each reads one snapshot, whose revision it reports.
package pdp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// MaxBatch is the most checks one batch may hold (contract section 3).
const MaxBatch = 1000

// DecisionLogger records every decision (internal/decisionlog); ctx is the
// request's (decisionlog.RequestFrom).
type DecisionLogger interface {
	LogDecision(ctx context.Context, e decisionlog.Entry)
}

// DefaultConsistencyTimeout is how long a check with a minimum revision
// waits for it when Service.ConsistencyTimeout is zero.
const DefaultConsistencyTimeout = time.Second

// Service answers checks and makes writes.
type Service struct {
	// ConsistencyTimeout bounds how long a check with a minimum revision
	// waits for the store to reach it (DefaultConsistencyTimeout if zero).
	ConsistencyTimeout time.Duration
	// Trace, when set, starts a span in ctx's trace and returns its end
	// (internal/tracing's Span): each evaluation is one. Set before
	// serving; nil costs a decision nothing.
	Trace func(ctx context.Context, name string) (context.Context, func(error))
	// BundleName names the active bundle in logged decisions: the bundles
	// section's name for it, so that they name it as OPA's status reports
	// do; decisionlog.BundleName if empty (serve's own bundle). Set before
	// serving.
	BundleName string

	backend store.Backend
	engine  *opa.Engine
	log     *slog.Logger
	dlog    DecisionLogger
	cache   *decisionCache // nil: off

	aheadTaken atomic.Uint64 // verdicts judged ahead and taken (prejudge.go)
	aheadAgain atomic.Uint64 // verdicts a plan made again took from the plan before it (prejudge.go)

	assigned assignedSystems // the systems stored assignments are of, at one revision (heldSystem)

	notReachedNotes notReachedNotes // unreached consistency tokens, for their warning

	// writers lets a large write that lost a race plan again alone: every
	// write holds it shared while it plans and commits, and one of at
	// least minAhead changes takes it whole after its first conflict
	// (writeSome). The writes of this process can then not change what
	// it read; in a fleet, other sidecars' writes still can. An
	// activation takes it whole to swap the policy (Engine.GuardSwaps):
	// a write is judged by the policy active when it commits. An
	// import's chunk waiting for the chunk before it lets it go
	// meanwhile (chunkWrite.settle), and plans again if the policy is
	// another once it holds it again.
	writers sync.RWMutex
}

// New returns a service over a store backend and an engine reading the same
// backend. Activate a bundle before serving.
func New(backend store.Backend, engine *opa.Engine, log *slog.Logger, dlog DecisionLogger) *Service {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{backend: backend, engine: engine, log: log, dlog: dlog, cache: newDecisionCache(DefaultCacheSize)}
	// A bundle is swapped in between writes, never between a write's
	// verdict and its commit (writeSome).
	engine.GuardSwaps(&s.writers)
	return s
}

// SetCacheSize sets how many decisions the decision cache keeps (0: no
// cache). Call it before serving.
func (s *Service) SetCacheSize(n int) { s.cache = newDecisionCache(n) }

// Activate compiles b and makes it the active policy. A bundle that fails
// to compile or to decide leaves the previous one active.
func (s *Service) Activate(ctx context.Context, b *opa.Bundle) (*opa.Policy, error) {
	return s.engine.Activate(ctx, b)
}

// Policy is the active policy, or nil before the first Activate.
func (s *Service) Policy() *opa.Policy { return s.engine.Current() }

// Store is the store backend, for reading it whole outside a decision
// (internal/replay re-decides logged checks over it). Writes go through
// the Service, never through it.
func (s *Service) Store() store.Backend { return s.backend }

// policy returns the active policy or an unavailable error.
func (s *Service) policy() (*opa.Policy, error) {
	p := s.engine.Current()
	if p == nil {
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	return p, nil
}

// Catalog is the active bundle's systems (nil before a bundle is active).
func (s *Service) Catalog() permatrix.Catalog {
	if p := s.engine.Current(); p != nil {
		return p.Catalog
	}
	return nil
}

// Revision is the latest applied store revision.
func (s *Service) Revision() uint64 { return s.backend.Revision() }

// view opens a snapshot of the applied state, at revision min or later.
func (s *Service) view(ctx context.Context, min uint64) (store.Snapshot, error) {
	if err := s.reach(ctx, min); err != nil {
		return nil, err
	}
	snap, err := s.backend.View()
	if err != nil {
		return nil, err
	}
	if err := below(snap.Revision(), min); err != nil {
		snap.Close()
		return nil, err
	}
	return snap, nil
}

// below refuses an answer at revision rev to a question that asked for min
// or later. reach saw min applied, but a fleet's replica found on another
// cluster's history is emptied and loaded again (internal/etcd), so the
// snapshot taken after it — or the revision a cached answer is checked
// at — can be older than what reach saw.
func below(rev, min uint64) error {
	if rev < min {
		return permatrix.Errorf(permatrix.EUNAVAILABLE,
			"min_revision %d is not applied here: the store went back to revision %d (a fleet replica reloaded); retry", min, rev)
	}
	return nil
}

// reach waits for the store to apply revision min: a consistency token
// (like SpiceDB's at_least_as_fresh) waits up to ConsistencyTimeout — and
// not past the deadline of ctx's request (OneWait) or of ctx itself —
// else EUNAVAILABLE naming both revisions, a NotReachedError. Cut by
// ctx's own deadline (a gRPC call's, shorter than the wait: Envoy's
// timeout) the token is not reached all the same: the client's 503, not
// a fault logged at every request; only a client gone (ctx cancelled) is
// ctx's error.
func (s *Service) reach(ctx context.Context, min uint64) error {
	if min > 0 && s.backend.Revision() < min {
		start := time.Now()
		deadline := start.Add(s.consistencyTimeout())
		if d, ok := ctx.Value(waitDeadline{}).(time.Time); ok && d.Before(deadline) {
			deadline = d
		}
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err := s.backend.Wait(wctx, min)
		cancel()
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			return s.notReached(permatrix.Errorf(permatrix.EUNAVAILABLE,
				"min_revision %d is not applied here yet: this decision point is at store revision %d (waited %s)", min, s.backend.Revision(), max(0, deadline.Sub(start))))
		}
	}
	return nil
}

// Reach waits, as a decision with the consistency token min does, for the
// store to apply revision min: for a caller that bounds what follows (a
// permission listing takes its place once its token is reached, not
// while it waits).
func (s *Service) Reach(ctx context.Context, min uint64) error { return s.reach(ctx, min) }

func (s *Service) consistencyTimeout() time.Duration {
	if s.ConsistencyTimeout > 0 {
		return s.ConsistencyTimeout
	}
	return DefaultConsistencyTimeout
}

// waitDeadline is the context key of OneWait's deadline.
type waitDeadline struct{}

// OneWait returns ctx for the checks of one request (a batch): their
// consistency tokens are waited for until one deadline, ConsistencyTimeout
// from now, not ConsistencyTimeout each — a batch of a thousand checks
// whose token is not reached answers after one timeout, not a thousand.
func (s *Service) OneWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, waitDeadline{}, time.Now().Add(s.consistencyTimeout()))
}

// Check decides one check. Invalid input is an EINVALID error; a fault in
// evaluation is an error too, never an allow.
func (s *Service) Check(ctx context.Context, c permatrix.Check) (*permatrix.Decision, error) {
	p, err := s.policy()
	if err != nil {
		return nil, err
	}
	if err := ValidateCheck(p.Catalog, c); err != nil {
		return nil, err
	}
	start := time.Now()
	evalCtx, end := s.evaluation(ctx)
	d, err := s.decide(evalCtx, p, c)
	end(err)
	if err != nil {
		if ctx.Err() != nil && !NotReached(err) {
			return nil, ctx.Err() // the client left or the request timed out: not a policy fault
		}
		if permatrix.ErrorCode(err) == permatrix.EUNAVAILABLE {
			return nil, err // min_revision not reached, the store not readable: 503, retry
		}
		s.log.Error("decision failed", "err", err, "system", c.System, "action", c.Action)
		return nil, permatrix.Errorf(permatrix.EINTERNAL, "evaluation failed")
	}
	if len(d.Errors) > 0 {
		return nil, &permatrix.Error{Code: permatrix.EINVALID, Message: d.Errors[0], Details: d.Errors}
	}
	d.DecisionID = newID()
	if s.dlog != nil {
		s.dlog.LogDecision(ctx, s.logEntry(d.DecisionID, decisionlog.CheckPath, c.Input(), d, d.Revision, p, start))
	}
	return d, nil
}

// evaluation starts an evaluation's span when tracing is on; the
// decision is logged with ctx, the request's span (as OPA logs it).
func (s *Service) evaluation(ctx context.Context) (context.Context, func(error)) {
	if s.Trace == nil {
		return ctx, endNothing
	}
	return s.Trace(ctx, "evaluation")
}

func endNothing(error) {}

// decide answers a valid check from the cache, or evaluates it (and
// remembers the answer with what it read).
func (s *Service) decide(ctx context.Context, p *opa.Policy, c permatrix.Check) (*permatrix.Decision, error) {
	if err := s.reach(ctx, c.MinRevision); err != nil {
		return nil, err
	}
	key, cacheable := "", false
	// The store's epoch, read before the snapshot: a decision kept answers
	// only in the epoch it was made in (store.Changes.Forget).
	epoch := s.backend.Changes().Epoch()
	// A policy whose decisions read the clock or the network (opa.Policy
	// Varies) is asked every time: its answer is not a function of the
	// check and the store.
	if s.cache != nil && !p.Varies {
		key, cacheable = cacheKey(p.Generation, epoch, c)
	}
	if cacheable {
		if d, ok := s.cache.get(key, epoch, s.backend.Changes(), s.backend.Revision()); ok {
			if sv, ok := s.backend.(store.Servable); ok {
				if err := sv.Servable(); err != nil {
					return nil, err // as View would say
				}
			}
			if err := below(d.Revision, c.MinRevision); err != nil {
				return nil, err
			}
			return d, nil
		}
	}
	snap, err := s.backend.View()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	if err := below(snap.Revision(), c.MinRevision); err != nil {
		return nil, err
	}
	if !cacheable || !s.cache.keeps(key) {
		// Not kept (a question asked for the first time lately): what it
		// reads need not be recorded.
		return p.Decide(ctx, snap, c)
	}
	tracked := store.Track(snap)
	d, err := p.Decide(ctx, tracked, c)
	if err == nil && len(d.Errors) == 0 {
		s.cache.put(key, d, tracked.Units())
	}
	return d, err
}

// ValidateCheck checks a check against the catalog: required fields, known
// system and action, a scope type the system has. data.permatrix.errors
// refuses the same checks in Rego, in the same words (and what the strict
// decoding of a check's body refuses before this): that one serves users
// of the stock opa and the Data API, this one answers /v1/check before any
// evaluation. A refusal added here needs its rule there:
// TestDataAPIRefusesTheIdsCheckRefuses (internal/http) sends each to both.
func ValidateCheck(c permatrix.Catalog, ch permatrix.Check) error {
	if err := permatrix.CheckID("subject", ch.Subject); err != nil {
		return err
	}
	switch {
	case ch.System == "":
		return permatrix.Errorf(permatrix.EINVALID, "system is required")
	case ch.Action == "":
		return permatrix.Errorf(permatrix.EINVALID, "action is required")
	}
	sys, ok := c[ch.System]
	if !ok {
		return c.UnknownSystem(ch.System)
	}
	if _, ok := sys.Actions[ch.Action]; !ok {
		return permatrix.Errorf(permatrix.EINVALID, "unknown action %q for system %q", ch.Action, ch.System)
	}
	if r := ch.Resource; r != nil {
		if err := validScope(sys, *r, "resource.type", "resource.id"); err != nil {
			return err
		}
	}
	if err := permatrix.ValidateContext(ch.Context); err != nil {
		return err
	}
	if err := contextKeyCase(sys, ch.Context); err != nil {
		return err
	}
	if len(ch.Groups) > permatrix.MaxAssertedGroups {
		return permatrix.Errorf(permatrix.EINVALID, "groups holds %d group ids, over the limit of %d", len(ch.Groups), permatrix.MaxAssertedGroups)
	}
	for i, g := range ch.Groups {
		if err := permatrix.CheckID(fmt.Sprintf("groups[%d]", i), g); err != nil {
			return err
		}
	}
	return nil
}

// contextKeyCase refuses a context key that differs only in case from one
// the system declares (its catalog's context_keys): the client means that
// key, and the rules never read it — {"Release_contains": ["process"]}
// was an import_release allowed without import_process. The first such
// key in byte order is named, as the policies' errors name it; a key the
// system does not declare in any case stays the client's.
func contextKeyCase(sys *permatrix.System, ctx map[string]any) error {
	var first, meant string
	for k := range ctx {
		if _, ok := sys.ContextKeys[k]; ok || (first != "" && k >= first) {
			continue
		}
		for name := range sys.ContextKeys {
			if strings.ToLower(name) == strings.ToLower(k) {
				first, meant = k, name
				break
			}
		}
	}
	if first == "" {
		return nil
	}
	return permatrix.Errorf(permatrix.EINVALID, "unknown key %q in object context (keys are case-sensitive: did you mean %q?)", first, meant)
}

// validScope checks a scope a client asks about: a type the system has,
// and the scope's shape (permatrix.Scope.Validate: an id but for the
// service scope, none for it).
func validScope(sys *permatrix.System, r permatrix.Scope, typeField, idField string) error {
	if r.Type != "" && !sys.HasScopeType(r.Type) {
		return permatrix.Errorf(permatrix.EINVALID, "system %q has no resource type %q (has: %v)", sys.ID, r.Type, sys.ScopeTypes)
	}
	return r.Validate(typeField, idField)
}

// Effective is one action a user may do, with the reasons.
type Effective struct {
	System  string           `json:"system"`
	Action  string           `json:"action"`
	Scope   permatrix.Scope  `json:"scope"`
	Reasons []map[string]any `json:"reasons"`
}

// Permissions lists what user may do at scope in the given systems (all
// systems when none is given): every action the policies allow there, all
// decided at one revision — minRevision or later (a consistency token, as
// a check's: reach).
func (s *Service) Permissions(ctx context.Context, user string, systems []string, scope permatrix.Scope, minRevision uint64) ([]Effective, uint64, error) {
	p, err := s.policy()
	if err != nil {
		return nil, 0, err
	}
	if err := permatrix.CheckID("user", user); err != nil {
		return nil, 0, err
	}
	if err := scope.Validate("resource_type", "resource_id"); err != nil {
		return nil, 0, err
	}
	if len(systems) == 0 {
		systems = p.Catalog.IDs()
		// Over every system, one that lacks the type is passed over; a
		// type none has is a mistake (a typo), not "no permissions".
		if !slices.ContainsFunc(systems, func(id string) bool { return p.Catalog[id].HasScopeType(scope.Type) }) {
			return nil, 0, permatrix.Errorf(permatrix.EINVALID, "no system has resource type %q", scope.Type)
		}
	}
	snap, err := s.view(ctx, minRevision)
	if err != nil {
		return nil, 0, err
	}
	defer snap.Close()
	out := []Effective{}
	for _, id := range systems {
		sys, ok := p.Catalog[id]
		if !ok {
			return nil, 0, p.Catalog.UnknownSystem(id)
		}
		if !sys.HasScopeType(scope.Type) {
			if len(systems) == 1 {
				return nil, 0, permatrix.Errorf(permatrix.EINVALID, "system %q has no resource type %q", id, scope.Type)
			}
			continue
		}
		for _, action := range sys.ActionIDs() {
			if !slices.Contains(sys.Actions[action].Scopes, scope.Type) {
				continue
			}
			sc := scope
			d, err := p.Decide(ctx, snap, permatrix.Check{Subject: user, System: id, Action: action, Resource: &sc})
			if err != nil {
				return nil, 0, permatrix.Errorf(permatrix.EINTERNAL, "evaluation failed")
			}
			if d.Allow {
				out = append(out, Effective{System: id, Action: action, Scope: scope, Reasons: d.Reasons})
			}
		}
	}
	return out, snap.Revision(), nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StoreHealth is the store backend's health.
func (s *Service) StoreHealth() store.Health { return s.backend.Health() }

// Ready reports whether the store answers a snapshot.
func (s *Service) Ready() error {
	snap, err := s.backend.View()
	if err != nil {
		return err
	}
	return snap.Close()
}

// logEntry is the decision log's entry of one evaluation that started at
// start (one owner for every path: checks, the Data and Query APIs).
func (s *Service) logEntry(id, path string, input, result any, revision uint64, p *opa.Policy, start time.Time) decisionlog.Entry {
	name := s.BundleName
	if name == "" {
		name = decisionlog.BundleName
	}
	return decisionlog.Entry{
		DecisionID: id, Timestamp: start.UTC(), Path: path, Input: input, Result: result,
		Bundles: map[string]decisionlog.BundleInfo{name: {Revision: p.BundleRevision()}},
		Metrics: map[string]any{decisionlog.TimerEval: time.Since(start).Nanoseconds()},
		Custom:  &decisionlog.Custom{StoreRevision: revision},
	}
}

// NewDecisionID returns a new random decision id.
func NewDecisionID() string { return newID() }
