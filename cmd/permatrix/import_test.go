package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The progress of `permatrix import` counts a last line without a newline
// in the file's total, as the import counts it in what it did: a file of
// three lines, the last unterminated, was "done 3 of total 2".
func TestImportCommandTotalCountsALastLineWithoutNewline(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.ndjson")
	body := strings.Join([]string{
		grantBody("user:nl1", tm, "analyst", `{"type":"service"}`),
		grantBody("user:nl2", tm, "analyst", `{"type":"service"}`),
		grantBody("user:nl3", tm, "analyst", `{"type":"service"}`),
	}, "\n") // no newline after the last
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "import", file, "--db", filepath.Join(dir, "p.db"), "--chunk", "1")
	if code != 0 || !strings.Contains(stdout, "imported 3 assignments from 3 lines") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `"done":3,`) || !strings.Contains(stderr, `"total":3,`) {
		t.Fatalf("the progress does not say 3 of 3 lines:\n%s", stderr)
	}
}

// A --chunk out of range is refused before anything is opened: it created
// the --db file (an empty store) first, then said "import stopped".
func TestImportCommandChunkCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(file, []byte(grantBody("user:c1", tm, "analyst", `{"type":"service"}`)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{"-1", "50001"} {
		db := filepath.Join(dir, "new.db")
		_, stderr, code := run(t, "import", file, "--db", db, "--chunk", chunk)
		if code != 2 || !strings.Contains(stderr, "--chunk") {
			t.Errorf("--chunk %s: exit %d, %s; want 2 naming --chunk", chunk, code, stderr)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("--chunk %s: the --db file was created (%v)", chunk, err)
		}
	}
}
