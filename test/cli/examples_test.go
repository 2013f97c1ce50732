package cli_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleData imports data/examples/acme.ndjson with `permatrix import`
// and holds every row of the table in data/README.md to what `permatrix
// check` answers on the resulting store: the documentation cannot drift
// from the binary.
func TestExampleData(t *testing.T) {
	root := filepath.Join("..", "..")
	db := filepath.Join(t.TempDir(), "acme.db")
	if out, code := run(t, "import", filepath.Join(root, "data", "examples", "acme.ndjson"), "--db", db); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	f, err := os.Open(filepath.Join(root, "data", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(strings.Trim(sc.Text(), "| "), " | ")
		if len(cells) != 6 || cells[0] == "subject" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		typ, id, _ := strings.Cut(cells[3], ":")
		out, code := run(t, "check", "--db", db, "--subject", cells[0], "--system", cells[1], "--action", cells[2], "--resource-type", typ, "--resource-id", id)
		want := map[string]int{"true": 0, "false": 1}[cells[4]]
		if code != want || !strings.Contains(out, `"allow": `+cells[4]) {
			t.Errorf("data/README.md says %s: exit %d (want %d)\n%s", sc.Text(), code, want, out)
		}
		rows++
	}
	if rows < 5 {
		t.Fatalf("only %d rows read from data/README.md's table", rows)
	}
}
