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

// A grant leaf damaged under the running server with bytes after its
// JSON value (a hand or a copy into the live file; the store check at
// start refuses such a file) makes the check that reads it a 500 under
// both evaluators: never the allow its value alone would give.
func TestCheckOverATrailingDamagedGrantIsA500(t *testing.T) {
	for _, ev := range []opa.Evaluator{opa.VM, opa.Topdown} {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		a := permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Permission: "edit_users",
			Scope: permatrix.Scope{Type: "project", ID: "p1"}}
		if _, err := store.Update(context.Background(), db, func(tx *store.Tx) error { return tx.CreateAssignment(&a) }); err != nil {
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
			t.Fatalf("%v, the sound grant: %d %s", ev, code, body)
		}
		key := store.GrantKey(a)
		snap, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := snap.Get(key)
		raw = slices.Clone(raw)
		snap.Close()
		if err != nil || raw == nil {
			t.Fatalf("the grant's leaf: %q %v", raw, err)
		}
		if _, err := db.Commit(context.Background(), &store.Batch{Ops: []store.Op{{Key: key, Value: append(raw, ']')}}}); err != nil {
			t.Fatal(err)
		}
		code, body = requestBody(t, http.MethodPost, base+"/v1/check", "", strings.NewReader(check))
		if code != http.StatusInternalServerError || strings.Contains(string(body), `"allow":true`) {
			t.Errorf("%v, the grant %s]: %d %s", ev, raw, code, body)
		}
	}
}
