package http_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
)

// A leaf damaged under the running server (a hand or a copy into the live
// file; the store check at start refuses such a file) makes the check that
// reads it a 500 under both evaluators: never the allow its value alone
// would give. Bytes after a grant's JSON value answered 200 "allow":true
// before; an emptied grant or membership leaf was read as null, which Rego
// takes as present (TestCheckOverAnEmptyLeafIsA500, over HTTP what
// internal/opa's TestDecisionOverAnEmptyLeafFails shows in process).
func TestCheckOverATrailingDamagedGrantIsA500(t *testing.T) {
	grant := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	checkDamaged(t, grant, nil, store.GrantKey(grant), func(raw []byte) []byte { return append(raw, ']') })
}

func TestCheckOverAnEmptyLeafIsA500(t *testing.T) {
	grant := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
		Scope: permatrix.Scope{Type: "project", ID: "p1"}}
	empty := func([]byte) []byte { return []byte{} }
	checkDamaged(t, grant, nil, store.GrantKey(grant), empty)
	viaGroup := grant
	viaGroup.Subject = "group:ops"
	member := &permatrix.Membership{Group: "ops", User: "alice"}
	checkDamaged(t, viaGroup, member, store.Key("d", "memberships", "alice", "ops"), empty)
}

// checkDamaged serves a bolt file holding a (and member, if any) under
// each evaluator, checks that alice is allowed, rewrites key's value with
// damage under the running server and checks again: a 500, never allow.
func checkDamaged(t *testing.T, a permatrix.Assignment, member *permatrix.Membership, key []byte, damage func([]byte) []byte) {
	t.Helper()
	for _, ev := range []opa.Evaluator{opa.VM, opa.Topdown} {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if _, err := store.Update(context.Background(), db, func(tx *store.Tx) error {
			if member != nil {
				if err := tx.AddMember(*member); err != nil {
					return err
				}
			}
			return tx.CreateAssignment(&a)
		}); err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		svc := pdp.New(db, opa.NewEngine(db, opa.WithEvaluator(ev)), log, nil)
		b, err := opa.ReadDefault()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Activate(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		base := serveOn(t, permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, Logger: log}))
		check := `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`
		code, body := requestBody(t, http.MethodPost, base+"/v1/check", "", strings.NewReader(check))
		if code != http.StatusOK || !strings.Contains(string(body), `"allow":true`) {
			t.Fatalf("%v, the sound store: %d %s", ev, code, body)
		}
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := snap.Get(key)
		raw = slices.Clone(raw)
		snap.Close()
		if err != nil || raw == nil {
			t.Fatalf("the leaf %q: %q %v", store.Segments(key), raw, err)
		}
		bad := damage(slices.Clone(raw))
		if _, err := db.Commit(context.Background(), &store.Batch{Ops: []store.Op{{Key: key, Value: bad}}}); err != nil {
			t.Fatal(err)
		}
		code, body = requestBody(t, http.MethodPost, base+"/v1/check", "", strings.NewReader(check))
		if code != http.StatusInternalServerError || strings.Contains(string(body), `"allow":true`) {
			t.Errorf("%v, the leaf %q rewritten %q: %d %s", ev, store.Segments(key), bad, code, body)
		}
	}
}
