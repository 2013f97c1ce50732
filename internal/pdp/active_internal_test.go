package pdp

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
)

// newActiveService is a Service over a fresh bolt file with the default
// bundle active, for this package's own tests (the external tests have
// newBoltService). The file is closed when t ends.
func newActiveService(t testing.TB) (*bolt.DB, *Service) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return db, svc
}
