// Package pdp is the policy decision point: it ties the assignment store
// (internal/bolt) to the policy engine (internal/opa) and owns the write
// protocol that keeps them in step:
//
//  1. under one writer lock, the vendor rules (data.permatrix.admin.verdict)
//     judge the write against the state as it is;
//  2. the write is one bbolt transaction that bumps the revision and is
//     fsynced before it is acknowledged;
//  3. the patches it made are applied to the engine's data before the lock
//     is released, so a check that starts after a write returned revision N
//     is decided at revision N or later.
//
// Checks take no lock: they read the engine's current policy and data.
package pdp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
)

// MaxBatch is the most checks one batch may hold (contract section 3).
const MaxBatch = 1000

// DecisionLogger records every decision (see internal/decisionlog).
type DecisionLogger interface {
	LogDecision(e DecisionLogEntry)
}

// DecisionLogEntry is one line of the decision log.
type DecisionLogEntry struct {
	DecisionID     string         `json:"decision_id"`
	Timestamp      time.Time      `json:"timestamp"`
	Path           string         `json:"path"`
	Input          map[string]any `json:"input"`
	Result         any            `json:"result"`
	StoreRevision  uint64         `json:"store_revision"`
	BundleRevision string         `json:"bundle_revision"`
	DurationNanos  int64          `json:"duration_ns"`
}

// Service answers checks and makes writes.
type Service struct {
	db     *bolt.DB
	engine *opa.Engine
	log    *slog.Logger
	dlog   DecisionLogger

	mu sync.Mutex // the writer lock: verdict → commit → apply, and reloads
}

// New returns a service over an open store and an engine. Load a bundle
// before serving.
func New(db *bolt.DB, engine *opa.Engine, log *slog.Logger, dlog DecisionLogger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, engine: engine, log: log, dlog: dlog}
}

// Engine is the policy engine the service decides with.
func (s *Service) Engine() *opa.Engine { return s.engine }

// DB is the assignment store.
func (s *Service) DB() *bolt.DB { return s.db }

// Load compiles b over the store's current state and serves it. A bundle
// that fails to compile leaves the previous one serving.
func (s *Service) Load(ctx context.Context, b *bundle.Bundle) (*opa.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engine.Load(ctx, b, s.db.State)
}

// policy returns the serving policy or an unavailable error.
func (s *Service) policy() (*opa.Policy, error) {
	p := s.engine.Current()
	if p == nil {
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	return p, nil
}

// Catalog is the serving bundle's systems (nil before a bundle is loaded).
func (s *Service) Catalog() permatrix.Catalog {
	if p := s.engine.Current(); p != nil {
		return p.Catalog
	}
	return nil
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
	input := c.Input()
	d, err := p.Decide(ctx, input)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the client left or the request timed out: not a policy fault
		}
		s.log.Error("decision failed", "err", err, "system", c.System, "action", c.Action)
		return nil, permatrix.Errorf(permatrix.EINTERNAL, "evaluation failed")
	}
	if len(d.Errors) > 0 {
		return nil, &permatrix.Error{Code: permatrix.EINVALID, Message: d.Errors[0], Details: d.Errors}
	}
	d.DecisionID = newID()
	if s.dlog != nil {
		s.dlog.LogDecision(DecisionLogEntry{
			DecisionID: d.DecisionID, Timestamp: start.UTC(), Path: "permatrix/decision",
			Input: input, Result: d, StoreRevision: d.Revision, BundleRevision: p.Revision(),
			DurationNanos: time.Since(start).Nanoseconds(),
		})
	}
	return d, nil
}

// ValidateCheck checks a check against the catalog: required fields, known
// system and action, a scope type the system has. data.permatrix.errors
// says much the same in Rego, on purpose: that one serves users of the
// stock opa and the Data API; this one answers /v1/check before any
// evaluation and also knows what Rego cannot count (bytes).
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
		return permatrix.Errorf(permatrix.EINVALID, "unknown system %q", ch.System)
	}
	if _, ok := sys.Actions[ch.Action]; !ok {
		return permatrix.Errorf(permatrix.EINVALID, "unknown action %q for system %q", ch.Action, ch.System)
	}
	if r := ch.Resource; r != nil {
		if err := validScope(sys, *r, "resource"); err != nil {
			return err
		}
	}
	for i, g := range ch.Groups {
		if err := permatrix.CheckID(fmt.Sprintf("groups[%d]", i), g); err != nil {
			return err
		}
	}
	return nil
}

// validScope checks a scope a client asks about: a type the system has and,
// but for the service scope, a valid id.
func validScope(sys *permatrix.System, r permatrix.Scope, field string) error {
	if r.Type == "" {
		return permatrix.Errorf(permatrix.EINVALID, "%s.type is required", field)
	}
	if !sys.HasScopeType(r.Type) {
		return permatrix.Errorf(permatrix.EINVALID, "system %q has no resource type %q (has: %v)", sys.ID, r.Type, sys.ScopeTypes)
	}
	if r.Type != "service" {
		return permatrix.CheckID(field+".id", r.ID)
	}
	return nil
}

// Effective is one action a user may do, with the reasons.
type Effective struct {
	System  string           `json:"system"`
	Action  string           `json:"action"`
	Scope   permatrix.Scope  `json:"scope"`
	Reasons []map[string]any `json:"reasons"`
}

// Permissions lists what user may do at scope in the given systems (all
// systems when none is given): every action the policies allow there.
func (s *Service) Permissions(ctx context.Context, user string, systems []string, scope permatrix.Scope) ([]Effective, uint64, error) {
	p, err := s.policy()
	if err != nil {
		return nil, 0, err
	}
	if err := permatrix.CheckID("user", user); err != nil {
		return nil, 0, err
	}
	if !scope.IsService() {
		if err := permatrix.CheckID("resource_id", scope.ID); err != nil {
			return nil, 0, err
		}
	}
	if len(systems) == 0 {
		systems = p.Catalog.IDs()
	}
	out := []Effective{}
	var rev uint64
	for _, id := range systems {
		sys, ok := p.Catalog[id]
		if !ok {
			return nil, 0, permatrix.Errorf(permatrix.EINVALID, "unknown system %q", id)
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
			d, err := p.Decide(ctx, permatrix.Check{Subject: user, System: id, Action: action, Resource: &sc}.Input())
			if err != nil {
				return nil, 0, permatrix.Errorf(permatrix.EINTERNAL, "evaluation failed")
			}
			rev = d.Revision
			if d.Allow {
				out = append(out, Effective{System: id, Action: action, Scope: scope, Reasons: d.Reasons})
			}
		}
	}
	return out, rev, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// verdict is one input of data.permatrix.admin.verdict (built by
// verdictInput) and where it comes from, e.g. "line 3", which prefixes a
// refusal.
type verdict struct {
	input map[string]any
	where string
}

// write runs the write protocol (see the package comment): each verdict
// input is judged, then fn runs in one bbolt transaction, then its patches
// reach the engine.
func (s *Service) write(ctx context.Context, verdicts []verdict, fn func(tx *bolt.Tx) error) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.policy()
	if err != nil {
		return 0, err
	}
	for _, v := range verdicts {
		violations, forbidden, err := p.Verdict(ctx, v.input)
		if err != nil {
			s.log.Error("write verdict failed", "err", err)
			return 0, permatrix.Errorf(permatrix.EINTERNAL, "evaluation of the write rules failed")
		}
		prefix := ""
		if v.where != "" {
			prefix = v.where + ": "
		}
		if len(violations) > 0 {
			return 0, &permatrix.Error{Code: permatrix.EUNPROCESSABLE, Message: prefix + violations[0], Details: violations}
		}
		if len(forbidden) > 0 {
			return 0, &permatrix.Error{Code: permatrix.EFORBIDDEN, Message: prefix + forbidden[0], Details: forbidden}
		}
	}
	rev, patches, err := s.db.Update(fn)
	if err != nil {
		return 0, err
	}
	if err := s.engine.Apply(ctx, patches); err != nil {
		// The write is committed; bring the engine back in step from the file.
		s.log.Error("applying patches failed; reloading data from the store", "err", err, "revision", rev)
		if _, err := s.engine.Load(ctx, p.Bundle, s.db.State); err != nil {
			s.log.Error("reload after failed patch", "err", err)
		}
	}
	return rev, nil
}

// DBOpen reports whether the store answers a read transaction.
func (s *Service) DBOpen() bool {
	return s.db != nil && s.db.View(func(*bolt.Tx) error { return nil }) == nil
}
