package main

// `permatrix store copy` refuses a copy of a store onto itself, however the
// two sides name it, before it writes or clears anything.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// One bbolt file named two ways — a relative path spelt otherwise, a
// symbolic link, a hard link — is one store: refused, as the same store,
// and the file is left as it was (no staged copy beside it either).
func TestStoreCopyRefusesOneFileNamedTwice(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	if _, stderr, code := harness.Run(t, "", bin, "import", filepath.Join(harness.Root(), "data", "examples", "acme.ndjson"), "--db", db); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	if err := os.Symlink("a.db", filepath.Join(dir, "sym.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(db, filepath.Join(dir, "hard.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{
		{"bolt:a.db", "bolt:./a.db"},
		{"bolt:./a.db", "bolt:sub/../a.db"},
		{"bolt:a.db", "bolt:sym.db"},
		{"bolt:sym.db", "bolt:a.db"},
		{"bolt:a.db", "bolt:hard.db"},
		{"bolt:hard.db", "bolt:" + db},
	} {
		out, stderr, code := harness.Run(t, dir, bin, "store", "copy", "--from", c[0], "--to", c[1], "--force")
		if code != 2 || !strings.Contains(stderr, "the same store") || !strings.Contains(stderr, "one file") {
			t.Fatalf("--from %s --to %s: exit %d (want 2, the same store)\n%s%s", c[0], c[1], code, out, stderr)
		}
		after, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, before) {
			t.Fatalf("--from %s --to %s: the refused copy changed the file", c[0], c[1])
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*.copying")); len(left) > 0 {
			t.Fatalf("--from %s --to %s: the refused copy left %v", c[0], c[1], left)
		}
	}
	if got := rawKeys(t, db); len(got) == 0 {
		t.Fatal("the store is empty")
	}
}
