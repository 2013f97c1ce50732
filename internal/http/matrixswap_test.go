package http_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestMatrixAfterASwapUnderTheSameRevision: GET /v1/matrix/{system} is
// what the serving bundle decides. A bundle's revision is what its
// manifest says — an OPA bundle rebuilt without a new revision, or
// without any (""), keeps it — so a bundle swapped in under the revision
// of the one before was answered the old bundle's matrix.
func TestMatrixAfterASwapUnderTheSameRevision(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	read := func(deny bool) *opa.Bundle {
		fsys := fstest.MapFS{}
		err := fs.WalkDir(permatrix.DefaultBundle, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(permatrix.DefaultBundle, p)
			if deny && strings.HasSuffix(p, "policies/permatrix/lib/lib.rego") {
				// Nothing is allowed any more.
				b = []byte(strings.Replace(string(b), "\tcount(missing) == 0\n} else", "\tcount(missing) == 0\n\tfalse\n} else", 1))
			}
			fsys[p] = &fstest.MapFile{Data: b}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := opa.ReadLayout(fsys)
		if err != nil {
			t.Fatal(err)
		}
		b.SetRevision("v1") // as a manifest says it
		return b
	}
	if _, err := svc.Activate(ctx, read(false)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(permhttp.NewServer(svc, permhttp.Config{Logger: log}).Handler())
	defer srv.Close()
	allowed := func() int {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/matrix/celonis-task-mining")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m struct {
			Cells []struct{ Allow bool } `json:"cells"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK || len(m.Cells) == 0 {
			t.Fatalf("%d %v, %d cells", resp.StatusCode, err, len(m.Cells))
		}
		n := 0
		for _, c := range m.Cells {
			if c.Allow {
				n++
			}
		}
		return n
	}
	if n := allowed(); n == 0 {
		t.Fatal("the stock matrix allows nothing: the test proves nothing")
	}
	if _, err := svc.Activate(ctx, read(true)); err != nil {
		t.Fatal(err)
	}
	if n := allowed(); n != 0 {
		t.Errorf("after a swap to a bundle that allows nothing (same manifest revision): the matrix allows %d cells", n)
	}
}
