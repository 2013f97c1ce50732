package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
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

// The summary counts in words that agree with the number: one line, one
// assignment and one commit were "1 assignments from 1 lines … in 1
// commits".
func TestImportCommandSummarySingular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(file, []byte(grantBody("user:one", tm, "analyst", `{"type":"service"}`)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "p.db")
	stdout, stderr, code := run(t, "import", file, "--db", db)
	if code != 0 || !strings.HasPrefix(stdout, "imported 1 assignment from 1 line in 1 commit; store bolt:") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Again: the line is stored already, no commit.
	stdout, stderr, code = run(t, "import", file, "--db", db)
	if code != 0 || !strings.HasPrefix(stdout, "imported 0 assignments from 1 line (1 already stored) in 0 commits; store bolt:") {
		t.Fatalf("import again: exit %d\n%s\n%s", code, stdout, stderr)
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

// Ctrl-C while `permatrix import` counts a large file's lines (for the
// time left) stops it at once, saying nothing was imported: the count read
// the whole file first (a 20 GB file: a minute), then the command failed
// with "bundle: probe decision: eval_cancel_error: context canceled".
func TestImportCommandInterruptedWhileCounting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "big.ndjson")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(20 << 30); err != nil { // sparse: no disk, slow to read through
		t.Skipf("no sparse file: %v", err)
	}
	_ = f.Close()
	var stderr strings.Builder
	cmd := exec.Command(bin, "import", file, "--db", filepath.Join(dir, "p.db"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signalled once it reads the file (its handler is set before it
	// opens it): a fixed wait stood for that, and a start slower than
	// the wait (a loaded machine) was killed by the signal instead.
	waitReading(t, cmd.Process.Pid, file)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("SIGINT while counting the lines: still running 5 s later\n%s", stderr.String())
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "import stopped: interrupted; nothing was imported") {
		t.Fatalf("SIGINT while counting the lines: %v\n%s", err, stderr.String())
	}
}

// A line's "actor": "" is refused, as POST /v1/import refuses it
// (docs/delegation.md: never a quiet fall-back to the operator): the
// command took it for no actor and wrote the line as the operator's, so a
// file from a caller that failed to fill in its user made eve a Celonis
// admin. Nothing of the file is stored.
func TestImportCommandRefusesAnEmptyActor(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.ndjson")
	body := grantBody("user:ok", tm, "analyst", `{"type":"service"}`) + "\n" +
		`{"actor":"",` + grantBody("user:eve", tm, "admin", `{"type":"service"}`)[1:] + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "p.db")
	stdout, stderr, code := run(t, "import", file, "--db", db, "--chunk", "0")
	if code != 2 || !strings.Contains(stderr, "line 2: actor must be a user id") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if out, _, code := run(t, "store", "check", "--db", db); code != 0 || !strings.Contains(out, " 0 assignments") {
		t.Fatalf("store check: exit %d\n%s", code, out)
	}
}

// `permatrix import` run again over a file whose first lines are stored
// (what a kill -9 leaves: whole chunks) reports those lines as already
// stored, not as imported, and as commits only the chunks that changed
// the store: it said "imported 3000 assignments … in 3 commits" while the
// revision moved by 2.
func TestImportCommandAgainReportsWhatItChanged(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 3000 {
		lines = append(lines, grantBody(fmt.Sprintf("user:again%04d", i), tm, "analyst", `{"type":"service"}`))
	}
	first, all := filepath.Join(dir, "first.ndjson"), filepath.Join(dir, "all.ndjson")
	if err := os.WriteFile(first, []byte(strings.Join(lines[:1500], "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(all, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "p.db")
	if out, stderr, code := run(t, "import", first, "--db", db, "--chunk", "500"); code != 0 {
		t.Fatalf("first import: exit %d\n%s%s", code, out, stderr)
	}
	before, err := bolt.Check(db)
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "import", all, "--db", db, "--chunk", "1000")
	if code != 0 || !strings.HasPrefix(out, "imported 1500 assignments from 3000 lines (1500 already stored) in 2 commits;") {
		t.Fatalf("import again: exit %d\n%s%s", code, out, stderr)
	}
	after, err := bolt.Check(db)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision-before.Revision != 2 || after.Assignments != 3000 {
		t.Fatalf("import again: revision %d → %d, %d assignments", before.Revision, after.Revision, after.Assignments)
	}
}

// waitReading waits until process pid has read into file (an open
// descriptor of it past offset 0, as /proc tells).
func waitReading(t *testing.T, pid int, file string) {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) { // a guard only
		entries, err := os.ReadDir(fds)
		if err != nil && !os.IsNotExist(err) {
			t.Skipf("no /proc to tell when the import reads: %v", err)
		}
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(fds, e.Name())); err != nil || target != file {
				continue
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			if pos, ok := strings.CutPrefix(string(info), "pos:"); err == nil && ok && strings.TrimSpace(strings.SplitN(pos, "\n", 2)[0]) != "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import did not read %s within a minute", file)
		}
	}
}
