package pdp_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// A write verdict is lists of strings. A bundle whose rule refused with
// anything else — an object, a number — had its refusal dropped when the
// verdict was read (only strings were kept), and the write it meant to
// refuse was stored: a fault taken for an allow. Such a verdict is an
// error: the write is refused (500), nothing is stored. (A bundle whose
// probe write meets such a verdict is refused at activation.)
func TestVerdictOfAnotherShapeRefusesTheWrite(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	engine := opa.NewEngine(db)
	engine.AddModule(opa.ModuleSource{Name: "objects.rego", Source: "package permatrix.systems.blueprism\n\nforbidden contains {\"reason\": \"not to friend\"} if {\n\tinput.actor\n\tinput.assignment.subject == \"user:friend\"\n}\n"})
	svc := pdp.New(db, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	// The activation's probe judges a write of each system, not this one:
	// the bundle is served.
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "users", Permissions: []string{"security_users"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:ba", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, ""); err != nil {
		t.Fatal(err)
	}
	before := db.Revision()
	_, rev, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:friend", System: "blueprism", Role: "users", Scope: permatrix.ServiceScope}, "ba")
	if err == nil {
		t.Fatalf("a write refused by a verdict entry that is not a string was stored (revision %d)", rev)
	}
	if code := permatrix.ErrorCode(err); code != permatrix.EINTERNAL {
		t.Fatalf("the write: %v", err)
	}
	if db.Revision() != before {
		t.Fatalf("the store moved from %d to %d", before, db.Revision())
	}
}
