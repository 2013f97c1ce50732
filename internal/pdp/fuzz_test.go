package pdp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// FuzzCheck feeds arbitrary JSON to the check path (validation, then the
// decision) over the embedded bundle. A check is either decided or refused
// as invalid (400) — never a fault (500) — and a decided one has ids the
// store would accept.
//
// `go test` runs the seeds (below and testdata/fuzz/FuzzCheck); fuzz longer
// with: go test ./internal/pdp -run '^$' -fuzz FuzzCheck -fuzztime 5m
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`,
		`{"subject":"alice","system":"blueprism","action":"security_user_roles","groups":["g1"]}`,
		`{"subject":"\u0001","system":"blueprism","action":"security_user_roles"}`,
		`{"subject":"alice","system":"uipath-task-mining-cloud","action":"x","context":{"role":"recording_user"}}`,
		`{"subject":"alice","system":"celonis-studio","action":"edit_package","resource":{"type":"space","id":""}}`,
		`{"subject":"a","system":"uipath-orchestrator","action":"view_robots","resource":{"type":"service","id":"x"},"groups":[""]}`,
		`{"subject":"a","system":"celonis-storage-manager","action":"upload_files","context":{"n":1e400,"d":[[[[]]]]}}`,
	} {
		f.Add([]byte(seed))
	}
	svc := newService(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var ch permatrix.Check
		if json.Unmarshal(body, &ch) != nil {
			return
		}
		d, err := svc.Check(context.Background(), ch)
		if err != nil {
			if code := permatrix.ErrorCode(err); code != permatrix.EINVALID {
				t.Fatalf("check %s: %s error %v", body, code, err)
			}
			return
		}
		if !permatrix.ValidID(ch.Subject) || ch.Resource != nil && !ch.Resource.IsService() && !permatrix.ValidID(ch.Resource.ID) {
			t.Fatalf("check %s decided (%+v) with an invalid id", body, d)
		}
		for _, g := range ch.Groups {
			if !permatrix.ValidID(g) {
				t.Fatalf("check %s decided with group %q", body, g)
			}
		}
	})
}

// newService is a Service over a new bbolt file with the embedded bundle.
func newService(t testing.TB) *pdp.Service {
	_, svc := newBoltService(t)
	return svc
}

// newBoltService is a service over a new bbolt file, the default bundle
// active, its engine compiling with opts.
func newBoltService(t testing.TB, opts ...opa.Option) (*bolt.DB, *pdp.Service) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	svc := pdp.New(db, opa.NewEngine(db, opts...), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return db, svc
}
