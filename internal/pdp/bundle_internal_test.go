package pdp

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// DefaultBundleWith is the embedded bundle with edit (nil: none) applied to
// each module's source (path, source → source) and the modules of more
// added (path: Rego), for this package's internal and external tests.
func DefaultBundleWith(t testing.TB, edit func(path, src string) string, more map[string]string) *opa.Bundle {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(permatrix.DefaultBundle, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(permatrix.DefaultBundle, p)
		if edit != nil && strings.HasSuffix(p, ".rego") {
			b = []byte(edit(p, string(b)))
		}
		fsys[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, src := range more {
		fsys[p] = &fstest.MapFile{Data: []byte(src)}
	}
	b, err := opa.ReadLayout(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
