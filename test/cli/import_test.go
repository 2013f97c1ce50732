package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// ndjsonLine is line n of a generated import: user:u<n> may edit Celonis
// users.
func ndjsonLine(n int) string {
	return fmt.Sprintf(`{"subject":"user:u%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`+"\n", n)
}

const (
	memberLine  = `{"subject":"user:mem","system":"celonis-task-mining","role":"member","scope":{"type":"service"}}` + "\n"
	refusedLine = `{"subject":"user:mem","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}` + "\n"
)

// writeImport writes lines 1 … n (line(i), or ndjsonLine) to a file.
func writeImport(t *testing.T, n int, line func(int) string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "import.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 1; i <= n; i++ {
		l := ""
		if line != nil {
			l = line(i)
		}
		if l == "" {
			l = ndjsonLine(i)
		}
		w.WriteString(l)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// importCmd runs `permatrix import args…` with stdin and returns stdout,
// stderr and the exit code.
func importCmd(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	cmd := command(t, append([]string{"import"}, args...)...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

var soundRE = regexp.MustCompile(`is sound: revision \d+, (\d+) assignments`)

// storeCheck runs `permatrix store check` and returns the assignments the
// sound store holds (failing the test on any damage).
func storeCheck(t *testing.T, db string) int {
	t.Helper()
	out, code := run(t, "store", "check", "--db", db)
	m := soundRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("store check: exit %d\n%s", code, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The import command on a generated file: its output line, plain log lines
// for progress (stderr is not a terminal), and a store that serves exactly
// the file's grants.
func TestImportCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	file := writeImport(t, 2502, func(n int) string {
		if n == 1000 || n == 2000 {
			return "\n" // blank lines are skipped, and counted as lines
		}
		return ""
	})
	out, errs, code := importCmd(t, nil, file, "--db", db, "--chunk", "1000")
	if code != 0 || !regexp.MustCompile(`^imported 2500 assignments from 2500 lines in 3 commits; store bolt:\S+ at revision \d+\n$`).MatchString(out) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	var progress, finished map[string]any
	for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stderr is not log lines: %q", l)
		}
		switch msg, _ := rec["msg"].(string); {
		case strings.HasSuffix(msg, ": finished"):
			finished = rec
		case strings.HasPrefix(msg, "importing "):
			progress = rec
		}
	}
	if progress == nil || progress["total"] != float64(2502) || progress["eta"] == nil || progress["per_second"] == nil ||
		finished == nil || finished["done"] != float64(2502) {
		t.Fatalf("progress log lines: %v, %v\n%s", progress, finished, errs)
	}
	if n := storeCheck(t, db); n != 2500 {
		t.Fatalf("store holds %d assignments", n)
	}
	// The store serves exactly the file's grants.
	s := serve(t, db)
	code, exp := s.do(t, "GET", "/v1/export", "")
	if code != 200 {
		t.Fatalf("export %d", code)
	}
	grants := exp["store"].(map[string]any)["grants"].(map[string]any)
	if len(grants) != 2500 || grants["user:u1"] == nil || grants["user:u2502"] == nil || grants["user:u1000"] != nil {
		t.Fatalf("export holds %d principals", len(grants))
	}
	s.Stop(t)

	// Standard input.
	var in strings.Builder
	for i := 1; i <= 300; i++ {
		in.WriteString(ndjsonLine(10_000 + i))
	}
	out, errs, code = importCmd(t, strings.NewReader(in.String()), "-", "--db", db, "--chunk", "100")
	if code != 0 || !strings.HasPrefix(out, "imported 300 assignments from 300 lines in 3 commits") {
		t.Fatalf("stdin: exit %d\n%s%s", code, out, errs)
	}
	if n := storeCheck(t, db); n != 2800 {
		t.Fatalf("store holds %d assignments after stdin", n)
	}

	// A named pipe (as <(zcat file.gz) gives): read once, no total.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for i := 1; i <= 200; i++ {
			f.WriteString(ndjsonLine(20_000 + i))
		}
	}()
	out, errs, code = importCmd(t, nil, fifo, "--db", db, "--chunk", "100")
	if code != 0 || !strings.HasPrefix(out, "imported 200 assignments from 200 lines in 2 commits") {
		t.Fatalf("named pipe: exit %d\n%s%s", code, out, errs)
	}
}

// A refused line stops the import with exit 2, saying which line, why, and
// how far the import got; the chunks before it stay.
func TestImportCommandRefusedLine(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	file := writeImport(t, 3000, func(n int) string {
		switch n {
		case 1:
			return memberLine
		case 1500:
			return refusedLine
		}
		return ""
	})
	out, errs, code := importCmd(t, nil, file, "--db", db, "--chunk", "500")
	if code != 2 || out != "" || !strings.Contains(errs, "permatrix: import stopped: line 1500: user:mem is a Celonis member") ||
		!strings.Contains(errs, "lines 1 to 1000 are imported: 1000 assignments in 2 commits") || !strings.Contains(errs, ": stopped") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if n := storeCheck(t, db); n != 1000 {
		t.Fatalf("store holds %d assignments, want the two chunks (1000)", n)
	}
	// All or nothing: nothing.
	db2 := filepath.Join(t.TempDir(), "p2.db")
	if _, errs, code := importCmd(t, nil, file, "--db", db2, "--chunk", "0"); code != 2 || !strings.Contains(errs, "line 1500: ") || !strings.Contains(errs, "nothing was imported") {
		t.Fatalf("all or nothing: exit %d\n%s", code, errs)
	}
	if n := storeCheck(t, db2); n != 0 {
		t.Fatalf("an all-or-nothing import with a refused line stored %d", n)
	}
	if _, errs, code := importCmd(t, nil, file, "--db", db2, "--chunk", "-5"); code != 2 || !strings.Contains(errs, "chunk must be 1 to 50000") {
		t.Fatalf("--chunk -5: exit %d\n%s", code, errs)
	}
}

// startImport starts `permatrix import` with debug logs (a line per chunk)
// and returns it with a channel of those lines.
func startImport(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *bytes.Buffer) {
	t.Helper()
	cmd := command(t, append([]string{"import", "--log-level", "debug"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines, &out
}

// waitChunks reads log lines until n chunks were committed.
func waitChunks(t *testing.T, lines <-chan string, n int) {
	t.Helper()
	seen := 0
	timeout := time.After(2 * time.Minute)
	for seen < n {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the import ended after %d chunks", seen)
			}
			if strings.Contains(l, `"import chunk committed"`) {
				seen++
			}
		case <-timeout:
			t.Fatalf("gave up waiting for chunk %d", seen+1)
		}
	}
}

// kill -9 in the middle of an import, then the same import run again
// (lines already stored are no-ops) and stopped by SIGINT: each time the
// store is sound and holds whole chunks on top of what it held.
func TestImportCommandKilled(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	s := serve(t, db)
	for i := range 7 {
		if code, _ := s.do(t, "POST", "/v1/assignments", assignment(fmt.Sprintf("before%d", i))); code != 201 {
			t.Fatal("assign")
		}
	}
	s.Stop(t)
	const total, chunk = 200_000, 1000
	file := writeImport(t, total, nil)

	cmd, lines, _ := startImport(t, file, "--db", db, "--chunk", strconv.Itoa(chunk))
	waitChunks(t, lines, 3)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	n := storeCheck(t, db)
	if n < 7+3*chunk || (n-7)%chunk != 0 {
		t.Fatalf("after kill -9 the store holds %d assignments: not 7 plus whole chunks of %d", n, chunk)
	}
	t.Logf("killed after %d chunks", (n-7)/chunk)

	cmd, lines, _ = startImport(t, file, "--db", db, "--chunk", strconv.Itoa(chunk))
	waitChunks(t, lines, 5) // the first three are there already: no-ops
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(strings.Join(rest, "\n"), "permatrix: import stopped: interrupted; lines 1 to ") {
		t.Fatalf("SIGINT: %v\n%s", err, strings.Join(rest, "\n"))
	}
	m := storeCheck(t, db)
	if m < 7+5*chunk || (m-7)%chunk != 0 {
		t.Fatalf("after SIGINT the store holds %d assignments (before it: %d)", m, n)
	}
	t.Logf("interrupted at %d chunks", (m-7)/chunk)
}

// kill -9 of serve in the middle of a chunked import over HTTP: after a
// restart the store is sound and holds whole chunks.
func TestServeKilledMidImport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "p.db")
	s := serve(t, db)
	for i := range 7 {
		if code, _ := s.do(t, "POST", "/v1/assignments", assignment(fmt.Sprintf("before%d", i))); code != 201 {
			t.Fatal("assign")
		}
	}
	const chunk = 1000
	pr, pw := io.Pipe()
	go func() {
		for i := 1; ; i++ {
			if _, err := io.WriteString(pw, ndjsonLine(i)); err != nil {
				return
			}
		}
	}()
	req, err := http.NewRequest("POST", s.URL+"/v1/import?chunk="+strconv.Itoa(chunk), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if code, body := s.do(t, "GET", "/v1/assignments?subject=user:u3000", ""); code == 200 && len(body["assignments"].([]any)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("three chunks were not committed")
		}
	}
	if err := s.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if err := <-done; err == nil {
		t.Fatal("the import answered although serve was killed")
	}
	pr.Close()
	n := storeCheck(t, db)
	if n < 7+3*chunk || (n-7)%chunk != 0 {
		t.Fatalf("after kill -9 the store holds %d assignments: not 7 plus whole chunks of %d", n, chunk)
	}
	t.Logf("killed after %d chunks", (n-7)/chunk)
}

// `permatrix import` into an etcd store at etcd's default limits, with the
// default --chunk (10,000): the chunk is committed in as many commits as
// fit etcd's --max-txn-ops (128), and the store holds every line. Told a
// larger limit than the cluster's, the import stops at once with exit 2
// and etcd's refusal, naming the flag to fix, and writes nothing.
func TestImportCommandEtcd(t *testing.T) {
	cluster := harness.StartEtcdCluster(t, 3)
	url := cluster.StoreURL("cli")
	dir := t.TempDir()
	const total = 3000
	file := writeImport(t, total, nil)
	out, errs, code := importCmd(t, nil, file, "--store", url, "--replica", filepath.Join(dir, "import.db"))
	m := regexp.MustCompile(`^imported 3000 assignments from 3000 lines in (\d+) commits; store etcd://\S+ at revision \d+\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if n, _ := strconv.Atoi(m[1]); n < total/128 {
		t.Fatalf("%d lines in %d commits: more than --max-txn-ops allows in one", total, n)
	}
	// What etcd holds, copied to a bbolt file: sound, every line.
	copied := filepath.Join(dir, "copied.db")
	if out, code := run(t, "store", "copy", "--from", url, "--to", "bolt:"+copied); code != 0 {
		t.Fatalf("store copy: exit %d\n%s", code, out)
	}
	if n := storeCheck(t, copied); n != total {
		t.Fatalf("etcd holds %d assignments, want %d", n, total)
	}

	more := writeImport(t, 100, func(n int) string { return ndjsonLine(100_000 + n) })
	out, errs, code = importCmd(t, nil, more, "--store", url, "--replica", filepath.Join(dir, "forced.db"), "--etcd-max-txn-ops", "100000")
	if code != 2 || out != "" || !strings.Contains(errs, "etcd refused the transaction for this write") ||
		!strings.Contains(errs, "--etcd-max-txn-ops of 100000") || !strings.Contains(errs, "nothing was imported") {
		t.Fatalf("told more than the cluster takes: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	copied2 := filepath.Join(dir, "copied2.db")
	if out, code := run(t, "store", "copy", "--from", url, "--to", "bolt:"+copied2); code != 0 {
		t.Fatalf("store copy: exit %d\n%s", code, out)
	}
	if n := storeCheck(t, copied2); n != total {
		t.Fatalf("after the refused import etcd holds %d assignments, want %d", n, total)
	}
}
