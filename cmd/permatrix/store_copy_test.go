package main

// `permatrix store copy` through the real binary, between real stores: bbolt
// files and a real etcd (test/harness builds it from the Go module proxy).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/test/harness"
)

// bin is the permatrix binary, built once for the package's tests.
var bin string

func TestMain(m *testing.M) { harness.MainWithBinary(m, &bin) }

const copyToken = "copy-token"

// run runs the binary and returns its stdout, stderr and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return harness.Run(t, "", bin, args...)
}

// serveOn starts `permatrix serve` with the store flags given.
func serveOn(t *testing.T, storeFlags ...string) *harness.Process {
	t.Helper()
	args := append([]string{"--addr", "127.0.0.1:0", "--admin-token", copyToken}, storeFlags...)
	p, err := harness.StartProcess(t, bin, copyToken, nil, args...)
	if err != nil {
		t.Fatalf("serve %v: %v\n%s", storeFlags, err, p.Logs())
	}
	return p
}

// want calls p and fails the test unless it answers status.
func want(t *testing.T, p *harness.Process, status int, method, path, body string) []byte {
	t.Helper()
	code, raw := p.Do(t, method, path, body)
	if code != status {
		t.Fatalf("%s %s: %d %s (want %d)", method, path, code, raw, status)
	}
	return raw
}

const tm = "celonis-task-mining"

func grantBody(subject, system, role string, scope string) string {
	return fmt.Sprintf(`{"subject":%q,"system":%q,"role":%q,"scope":%s}`, subject, system, role, scope)
}

// source is what a populated bbolt store holds, as its server showed it.
type source struct {
	path      string
	export    []byte   // GET /v1/export
	list      []string // every assignment id, in the listing's order
	deleted   string   // the id of an assignment deleted last: never to be handed out again
	decisions map[string][]byte
}

// copyChecks are decided on the source and on every copy: each kind of
// record is behind one (direct, group, custom role, project scope).
var copyChecks = []string{
	`{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`,
	`{"subject":"alice","system":"celonis-task-mining","action":"edit_users"}`,
	`{"subject":"gus","system":"celonis-task-mining","action":"edit_users"}`,
	`{"subject":"ann","system":"blueprism","action":"edit_process"}`,
	`{"subject":"ann","system":"blueprism","action":"delete_process"}`,
	`{"subject":"bulk042","system":"celonis-task-mining","action":"edit_users"}`,
	`{"subject":"legacy","system":"celonis-task-mining","action":"edit_users"}`,
	`{"subject":"zed","system":"celonis-task-mining","action":"edit_users"}`,
}

// populate writes every kind of record into a new bbolt store through
// `permatrix serve` — assignments to users and groups at service and
// project scope, one with an explicit id, a membership, a custom role, a
// project, a deleted assignment — and records what the server shows.
func populate(t *testing.T, path string) source {
	t.Helper()
	p := serveOn(t, "--db", path)
	var lines strings.Builder
	for i := range 150 {
		lines.WriteString(grantBody(fmt.Sprintf("user:bulk%03d", i), tm, "admin", `{"type":"service"}`) + "\n")
	}
	lines.WriteString(`{"id":"legacy-7","subject":"user:legacy","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}` + "\n")
	want(t, p, 200, "POST", "/v1/import", lines.String())
	want(t, p, 201, "POST", "/v1/assignments", grantBody("user:alice", tm, "analyst", `{"type":"service"}`))
	want(t, p, 201, "POST", "/v1/assignments", `{"subject":"user:alice","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`)
	want(t, p, 201, "POST", "/v1/assignments", `{"subject":"group:ops","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`)
	want(t, p, 200, "PUT", "/v1/groups/ops/members/gus", "")
	want(t, p, 200, "PUT", "/v1/systems/celonis-task-mining/projects/p1", `{"created_by":"ann","kind":"assisted"}`)
	if code, raw := p.Do(t, "PUT", "/v1/systems/blueprism/roles/dev", `{"permissions":["edit_process","execute_process"]}`); code != 200 && code != 201 {
		t.Fatalf("custom role: %d %s", code, raw)
	}
	want(t, p, 201, "POST", "/v1/assignments", grantBody("user:ann", "blueprism", "dev", `{"type":"service"}`))
	var zed struct{ ID string }
	json.Unmarshal(want(t, p, 201, "POST", "/v1/assignments", grantBody("user:zed", tm, "admin", `{"type":"service"}`)), &zed)
	want(t, p, 200, "DELETE", "/v1/assignments/"+zed.ID, "")

	s := source{path: path, deleted: zed.ID, export: want(t, p, 200, "GET", "/v1/export", ""), list: listIDs(t, p), decisions: decide(t, p)}
	if len(s.list) != 155 || slices.Contains(s.list, zed.ID) {
		t.Fatalf("source assignments: %d %v", len(s.list), s.list)
	}
	allowed := 0
	for _, d := range s.decisions {
		if bytes.Contains(d, []byte(`"allow":true`)) {
			allowed++
		}
	}
	if allowed < 5 {
		t.Fatalf("the checks should mostly allow on the source: %v", s.decisions)
	}
	p.Stop(t)
	return s
}

// listIDs are the assignment ids GET /v1/assignments lists, in its order.
func listIDs(t *testing.T, p *harness.Process) []string {
	t.Helper()
	var ids []string
	for cursor := ""; ; {
		var page struct {
			Assignments []struct{ ID string }
			NextCursor  string `json:"next_cursor"`
		}
		if err := json.Unmarshal(want(t, p, 200, "GET", "/v1/assignments?limit=60&cursor="+cursor, ""), &page); err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Assignments {
			ids = append(ids, a.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		cursor = page.NextCursor
	}
}

// decide asks every copyCheck and keeps what a copy must answer alike:
// allow and reasons (which name assignment ids).
func decide(t *testing.T, p *harness.Process) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, c := range copyChecks {
		var d struct {
			Allow   bool              `json:"allow"`
			Reasons []json.RawMessage `json:"reasons"`
		}
		if err := json.Unmarshal(want(t, p, 200, "POST", "/v1/check", c), &d); err != nil {
			t.Fatal(err)
		}
		out[c], _ = json.Marshal(d)
	}
	return out
}

var revisionField = regexp.MustCompile(`^\{"store":\{"revision":[0-9]+`)

// sameExport holds two exports to be byte-identical but for the revision
// (each store counts its own commits).
func sameExport(t *testing.T, what string, want, got []byte) {
	t.Helper()
	w := revisionField.ReplaceAll(want, []byte(`{"store":{"revision":R`))
	g := revisionField.ReplaceAll(got, []byte(`{"store":{"revision":R`))
	if !bytes.Equal(w, g) || bytes.Equal(w, want) {
		t.Fatalf("%s: the export differs from the source's:\n%s\n%s", what, want, got)
	}
}

// rawKeys are every key and value of a bbolt store file, in order.
func rawKeys(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var kv []string
	if err := snap.Scan(nil, nil, func(k, v []byte) error {
		kv = append(kv, strconv.Quote(string(k))+"="+strconv.Quote(string(v)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return kv
}

// logLines are the JSON log records of a command's stderr.
func logLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stderr line is not a JSON log record (stderr is not a terminal): %q", l)
		}
		out = append(out, rec)
	}
	return out
}

// bolt → etcd → bolt: every key arrives unchanged (ids, indexes, roles,
// projects, scopes, memberships), the listing keeps its order, the exports
// are byte-identical but for the revision, and decisions and new ids on the
// copies are as they must be. The etcd cluster runs with etcd's default
// --max-txn-ops (128): the copy's batches fit it.
func TestStoreCopyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := populate(t, filepath.Join(dir, "src.db"))
	srcKeys := rawKeys(t, src.path)

	cluster := harness.StartEtcdCluster(t, 1)
	etcdURL := cluster.StoreURL("copied")
	// Told a larger --max-txn-ops than the cluster's: etcd refuses the
	// first batch whole, and the error says what to do.
	out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src.path, "--to", etcdURL, "--etcd-max-txn-ops", "1000")
	if code != 2 || !strings.Contains(stderr, "etcd refused the transaction") || !strings.Contains(stderr, "set --etcd-max-txn-ops to the cluster's") ||
		!strings.Contains(stderr, "copy stopped after 0 of") {
		t.Fatalf("batches over --max-txn-ops: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "store", "copy", "--from", "bolt:"+src.path, "--to", etcdURL)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("copied %d keys", len(srcKeys))) {
		t.Fatalf("bolt → etcd: exit %d\n%s%s", code, out, stderr)
	}
	// Not on a terminal: progress as JSON log lines, the last with the
	// count and the total.
	recs := logLines(t, stderr)
	last := recs[len(recs)-1]
	if !strings.Contains(last["msg"].(string), "copying bolt:"+src.path+" to "+etcdURL) || !strings.HasSuffix(last["msg"].(string), "finished") ||
		last["done"] != float64(len(srcKeys)) || last["total"] != float64(len(srcKeys)) {
		t.Fatalf("the last progress line: %v", last)
	}

	// etcd → a new bbolt file: the same keys and values as the source.
	final := filepath.Join(dir, "final.db")
	out, stderr, code = run(t, "store", "copy", "--from", etcdURL, "--to", "bolt:"+final)
	if code != 0 {
		t.Fatalf("etcd → bolt: exit %d\n%s%s", code, out, stderr)
	}
	if got := rawKeys(t, final); !slices.Equal(got, srcKeys) {
		t.Fatalf("the round trip changed the store:\nsource %d keys\n%s\nfinal %d keys\n%s", len(srcKeys), strings.Join(srcKeys, "\n"), len(got), strings.Join(got, "\n"))
	}

	// Two sidecars on the copied etcd decide from the copied data, list
	// the same assignments in the same order, and hand out new ids that
	// collide with none copied — nor with the deleted one.
	a := serveOn(t, "--store", etcdURL, "--replica", filepath.Join(dir, "a.db"))
	b := serveOn(t, "--store", etcdURL, "--replica", filepath.Join(dir, "b.db"))
	for name, p := range map[string]*harness.Process{"sidecar a": a, "sidecar b": b} {
		waitReady(t, p)
		sameExport(t, name, src.export, want(t, p, 200, "GET", "/v1/export", ""))
		if got := listIDs(t, p); !slices.Equal(got, src.list) {
			t.Fatalf("%s lists %v, the source %v", name, got, src.list)
		}
		if got := decide(t, p); fmt.Sprint(got) != fmt.Sprint(src.decisions) {
			t.Fatalf("%s decides otherwise than the source:\n%s\n%s", name, got, src.decisions)
		}
	}
	var newA, newB struct {
		ID       string
		Revision uint64
	}
	json.Unmarshal(want(t, a, 201, "POST", "/v1/assignments", grantBody("user:newa", tm, "admin", `{"type":"service"}`)), &newA)
	json.Unmarshal(want(t, b, 201, "POST", "/v1/assignments", grantBody("user:newb", tm, "analyst", `{"type":"service"}`)), &newB)
	freshIDs(t, "etcd", src, newA.ID, newB.ID)
	// b decides a's write once given its revision.
	if code, raw := b.Do(t, "POST", "/v1/check", fmt.Sprintf(`{"subject":"newa","system":%q,"action":"edit_users","min_revision":%d}`, tm, newA.Revision)); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
		t.Fatalf("sidecar b with a's token: %d %s", code, raw)
	}

	// The bbolt copy serves the same, and its new ids are fresh too.
	f := serveOn(t, "--db", final)
	sameExport(t, "the final bbolt copy", src.export, want(t, f, 200, "GET", "/v1/export", ""))
	if got := listIDs(t, f); !slices.Equal(got, src.list) {
		t.Fatalf("the final copy lists %v, the source %v", got, src.list)
	}
	if got := decide(t, f); fmt.Sprint(got) != fmt.Sprint(src.decisions) {
		t.Fatalf("the final copy decides otherwise than the source:\n%s\n%s", got, src.decisions)
	}
	var newF struct{ ID string }
	json.Unmarshal(want(t, f, 201, "POST", "/v1/assignments", grantBody("user:newf", tm, "analyst", `{"type":"service"}`)), &newF)
	freshIDs(t, "final bbolt copy", src, newF.ID)
}

// freshIDs fails unless every id sorts after every numbered id the source
// ever handed out (its listing and its deleted one).
func freshIDs(t *testing.T, where string, src source, ids ...string) {
	t.Helper()
	highest := src.deleted
	for _, id := range src.list {
		if strings.HasPrefix(id, "a") {
			highest = max(highest, id)
		}
	}
	for _, id := range ids {
		if id <= highest || slices.Contains(src.list, id) {
			t.Fatalf("%s: new id %s reuses or precedes the source's ids (highest handed out: %s)", where, id, highest)
		}
	}
	if len(ids) == 2 && ids[0] == ids[1] {
		t.Fatalf("%s: two sidecars handed out the same id %s", where, ids[0])
	}
}

func waitReady(t *testing.T, p *harness.Process) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _ := p.Do(t, "GET", "/health/ready", ""); code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A target that holds anything is refused, and left as it is, unless
// --force, which replaces its content with the source's.
func TestStoreCopyNonEmptyTarget(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.db")
	two := filepath.Join(dir, "two.db")
	for path, user := range map[string]string{one: "one", two: "two"} {
		p := serveOn(t, "--db", path)
		want(t, p, 201, "POST", "/v1/assignments", grantBody("user:"+user, tm, "analyst", `{"type":"service"}`))
		p.Stop(t)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	etcdURL := cluster.StoreURL("target")
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+one, "--to", etcdURL); code != 0 {
		t.Fatalf("first copy: exit %d\n%s%s", code, out, stderr)
	}
	for _, target := range []string{etcdURL, "bolt:" + one} {
		from := "bolt:" + two
		out, stderr, code := run(t, "store", "copy", "--from", from, "--to", target)
		if code != 2 || !strings.Contains(stderr, "holds") || !strings.Contains(stderr, "--force") {
			t.Fatalf("copy into the non-empty %s: exit %d\n%s%s", target, code, out, stderr)
		}
	}
	// Nothing of the target changed.
	final := filepath.Join(dir, "check.db")
	if _, stderr, code := run(t, "store", "copy", "--from", etcdURL, "--to", "bolt:"+final); code != 0 {
		t.Fatal(stderr)
	}
	if got, src := rawKeys(t, final), rawKeys(t, one); !slices.Equal(got, src) {
		t.Fatalf("a refused copy changed the target:\n%v\n%v", got, src)
	}
	// --force: the target holds exactly the new source, nothing of before.
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+two, "--to", etcdURL, "--force"); code != 0 || !strings.Contains(stderr, "target cleared") {
		t.Fatalf("--force: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "store", "copy", "--from", etcdURL, "--to", "bolt:"+final, "--force"); code != 0 {
		t.Fatal(stderr)
	}
	if got, src := rawKeys(t, final), rawKeys(t, two); !slices.Equal(got, src) {
		t.Fatalf("after --force the target is not the source:\n%v\n%v", got, src)
	}
}

// Sources that cannot be copied are refused with a clear error, and the
// target is left alone — even with --force.
func TestStoreCopyBadSources(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	p := serveOn(t, "--db", good)
	for i := range 20 {
		want(t, p, 201, "POST", "/v1/assignments", grantBody(fmt.Sprintf("user:u%d", i), tm, "analyst", `{"type":"service"}`))
	}
	p.Stop(t)
	goodKeys := rawKeys(t, good)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target.db")
	if _, stderr, code := run(t, "store", "copy", "--from", "bolt:"+good, "--to", "bolt:"+target); code != 0 {
		t.Fatal(stderr)
	}
	// A damaged copy of the good file: garbage over its data pages.
	damaged := filepath.Join(dir, "damaged.db")
	bad := bytes.Clone(raw)
	for i := 2 * 4096; i < len(bad); i += 7 {
		bad[i] ^= 0x5a
	}
	if err := os.WriteFile(damaged, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte("not a store"), 0o600)
	empty := filepath.Join(dir, "empty.db")
	if db, err := bolt.Open(empty, bolt.Options{}); err != nil {
		t.Fatal(err)
	} else {
		db.Close()
	}
	for _, c := range []struct {
		from     string
		code     int
		contains []string
	}{
		{"bolt:" + damaged, exitStoreDamaged, []string{"--from", "damaged.db is damaged", "permatrix store check"}},
		{"bolt:" + garbage, exitStoreDamaged, []string{"--from", "garbage.db is damaged"}},
		{"bolt:" + filepath.Join(dir, "typo.db"), 2, []string{"--from", "typo.db", "no such file"}},
		{"bolt:" + empty, 2, []string{"holds nothing to copy"}},
		{"bolt:" + target, 2, []string{"same store"}},
		{"bolt:", 2, []string{"name the file"}},
		{"file:" + good, 2, []string{"want bolt:PATH or etcd://"}},
	} {
		out, stderr, code := run(t, "store", "copy", "--from", c.from, "--to", "bolt:"+target, "--force")
		for _, s := range c.contains {
			if code != c.code || !strings.Contains(stderr, s) {
				t.Fatalf("--from %s: exit %d (want %d, with %q)\n%s%s", c.from, code, c.code, s, out, stderr)
			}
		}
		if strings.Count(stderr, "permatrix:") != 1 { // not "permatrix: --from …: permatrix: unavailable: …"
			t.Fatalf("--from %s: the error says permatrix: more than once:\n%s", c.from, stderr)
		}
		if got := rawKeys(t, target); !slices.Equal(got, goodKeys) {
			t.Fatalf("--from %s changed the target", c.from)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.db")); err == nil {
		t.Fatal("a mistyped --from created a file")
	}
	// The same etcd store named twice (endpoints in another order).
	cluster := harness.StartEtcdCluster(t, 1)
	u := cluster.StoreURL("p")
	if _, stderr, code := run(t, "store", "copy", "--from", u, "--to", strings.Replace(u, "etcd://", "etcd://127.0.0.1:1,", 1), "--force"); code != 2 || !strings.Contains(stderr, "same store") {
		t.Fatalf("the same etcd store: exit %d\n%s", code, stderr)
	}
	// An etcd prefix that holds nothing (a mistyped prefix) is no source.
	if _, stderr, code := run(t, "store", "copy", "--from", u, "--to", "bolt:"+target, "--force"); code != 2 || !strings.Contains(stderr, "holds nothing") {
		t.Fatalf("an empty etcd prefix: exit %d\n%s", code, stderr)
	}
	if got := rawKeys(t, target); !slices.Equal(got, goodKeys) {
		t.Fatal("an empty etcd source changed the target")
	}
}

// interruptCopy starts `store copy` and sends sig once its first batch is
// committed (its first progress line), and returns its stderr. The copy is
// made of hundreds of fsynced batches: it must still be running then.
func interruptCopy(t *testing.T, sig os.Signal, env []string, args ...string) (stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"store", "copy", "--batch-ops", "10"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"done"`) {
			if strings.Contains(sc.Text(), "finished") {
				t.Fatalf("the copy finished before it could be interrupted:\n%s", seen.String())
			}
			cmd.Process.Signal(sig)
			break
		}
	}
	rest, _ := io.ReadAll(pipe)
	seen.Write(rest)
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the copy was not interrupted:\n%s", seen.String())
	}
	return seen.String(), cmd.ProcessState.ExitCode()
}

// A copy into a bbolt file that is killed or interrupted half-way leaves the
// target as it was — absent, or the store it held — never half a store
// (which serve and a second copy refuse as damaged: the documented
// recovery, running it again with --force, exited 3), and running it again
// copies it all.
func TestStoreCopyInterruptedIntoBolt(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%04d", i), tm, "analyst", `{"type":"service"}`) + "\n")
	}
	file := filepath.Join(dir, "a.ndjson")
	os.WriteFile(file, []byte(lines.String()), 0o600)
	src, other := filepath.Join(dir, "src.db"), filepath.Join(dir, "other.db")
	for _, db := range []string{src, other} {
		if out, stderr, code := run(t, "import", file, "--db", db); code != 0 {
			t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
		}
	}
	p := serveOn(t, "--db", other)
	want(t, p, 201, "POST", "/v1/assignments", grantBody("user:extra", tm, "analyst", `{"type":"service"}`))
	p.Stop(t)
	target := filepath.Join(dir, "target.db")

	// Killed copying into a new file: no target, or an empty sound one.
	interruptCopy(t, syscall.SIGKILL, nil, "--from", "bolt:"+src, "--to", "bolt:"+target)
	if _, err := os.Stat(target); err == nil {
		if out, stderr, code := run(t, "store", "check", "--db", target); code != 0 || !strings.Contains(out, "0 assignments") {
			t.Fatalf("a killed copy left a target that is not an empty store: exit %d\n%s%s", code, out, stderr)
		}
	}
	for _, force := range []string{"--force", ""} { // with --force as the docs say; without, since nothing was copied
		args := []string{"store", "copy", "--from", "bolt:" + src, "--to", "bolt:" + target}
		if force != "" {
			args = append(args, force)
		}
		if out, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("copy again after a kill (%s): exit %d\n%s%s", force, code, out, stderr)
		}
		os.Rename(target, target+".done")
	}
	os.Rename(target+".done", target)
	whole := rawKeys(t, target)
	if got, want := whole, rawKeys(t, src); !slices.Equal(got, want) {
		t.Fatalf("the copy made again is not the source: %d keys, want %d", len(got), len(want))
	}

	// Interrupted (kill -9, Ctrl-C) replacing that store with --force: it
	// holds what it held, and stays sound.
	for _, sig := range []os.Signal{syscall.SIGKILL, os.Interrupt} {
		interruptCopy(t, sig, nil, "--from", "bolt:"+other, "--to", "bolt:"+target, "--force")
		if out, stderr, code := run(t, "store", "check", "--db", target); code != 0 {
			t.Fatalf("after %v the target is not sound: exit %d\n%s%s", sig, code, out, stderr)
		}
		if got := rawKeys(t, target); !slices.Equal(got, whole) {
			t.Fatalf("after %v the target holds %d keys, not the %d it held", sig, len(got), len(whole))
		}
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+other, "--to", "bolt:"+target, "--force"); code != 0 {
		t.Fatalf("copy again after an interrupted --force: exit %d\n%s%s", code, out, stderr)
	}
	if got, want := rawKeys(t, target), rawKeys(t, other); !slices.Equal(got, want) {
		t.Fatalf("the target is not the new source: %d keys, want %d", len(got), len(want))
	}
	if leftovers, _ := filepath.Glob(target + ".*"); len(leftovers) > 0 {
		t.Fatalf("left next to the target: %v", leftovers)
	}
}

// A copy into etcd interrupted half-way leaves half a store there, marked
// as an incomplete copy (the documented way out: copy again with --force).
// Copied on from there into a bbolt file, it was "copied", exit 0 — a file
// serve then refused as damaged (exit 3). A source that is not a whole
// store is refused, saying why, and the target is not made.
func TestStoreCopyRefusesHalfAStore(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%04d", i), tm, "analyst", `{"type":"service"}`) + "\n")
	}
	file := filepath.Join(dir, "a.ndjson")
	os.WriteFile(file, []byte(lines.String()), 0o600)
	src := filepath.Join(dir, "src.db")
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	half := cluster.StoreURL("half")
	interruptCopy(t, syscall.SIGKILL, nil, "--from", "bolt:"+src, "--to", half)
	endKilledCopyLock(t, cluster, "half") // as its lease's expiry would
	target := filepath.Join(dir, "target.db")
	out, stderr, code := run(t, "store", "copy", "--from", half, "--to", "bolt:"+target)
	if code == 0 || !strings.Contains(stderr, "holds an incomplete copy") || !strings.Contains(stderr, "--force") {
		t.Fatalf("copying half a store: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("copying half a store made the target")
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", half, "--force"); code != 0 {
		t.Fatalf("copy again with --force: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := run(t, "store", "copy", "--from", half, "--to", "bolt:"+target); code != 0 {
		t.Fatalf("copying the whole store: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := run(t, "store", "check", "--db", target); code != 0 || !strings.Contains(out, "3000 assignments") {
		t.Fatalf("the copy: exit %d\n%s%s", code, out, stderr)
	}
}

// A damaged store file's message says to restore it with `permatrix store
// copy` from a fleet's etcd (or a sound copy): copied onto, it is replaced
// with --force (it was refused, exit 3, --force or not); without --force
// it is refused, saying so, and left as it is.
func TestStoreCopyRestoresADamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	p := serveOn(t, "--db", good)
	for i := range 20 {
		want(t, p, 201, "POST", "/v1/assignments", grantBody(fmt.Sprintf("user:u%d", i), tm, "analyst", `{"type":"service"}`))
	}
	p.Stop(t)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.db")
	for i := 2 * 4096; i < len(raw); i += 7 {
		raw[i] ^= 0x5a
	}
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+good, "--to", "bolt:"+damaged)
	if code != exitStoreDamaged || !strings.Contains(stderr, "is damaged") || !strings.Contains(stderr, "--force") {
		t.Fatalf("copy onto a damaged file without --force: exit %d\n%s%s", code, out, stderr)
	}
	if now, _ := os.ReadFile(damaged); !bytes.Equal(now, raw) {
		t.Fatal("the damaged file was changed without --force")
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+good, "--to", "bolt:"+damaged, "--force"); code != 0 {
		t.Fatalf("restoring a damaged file with --force: exit %d\n%s%s", code, out, stderr)
	}
	if got, want := rawKeys(t, damaged), rawKeys(t, good); !slices.Equal(got, want) {
		t.Fatalf("the restored file holds %d keys, want %d", len(got), len(want))
	}
}

// Ctrl-C or SIGTERM stops a copy as an error does (exit 2, saying how far
// it got), cleaning up after it: the bbolt target as it was with no
// PATH.copying beside it, and no etcd replica made for the copy left in the
// temporary directory (a whole store's worth at every interrupt: the
// signal killed the process before its deferred clean-up ran).
func TestStoreCopyInterruptCleansUp(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%04d", i), tm, "analyst", `{"type":"service"}`) + "\n")
	}
	file := filepath.Join(dir, "a.ndjson")
	os.WriteFile(file, []byte(lines.String()), 0o600)
	src := filepath.Join(dir, "src.db")
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	url := cluster.StoreURL("whole")
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", url); code != 0 {
		t.Fatalf("copy into etcd: exit %d\n%s%s", code, out, stderr)
	}
	tmp := filepath.Join(dir, "tmp")
	target := filepath.Join(dir, "target.db")
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		stderr, code := interruptCopy(t, sig, []string{"TMPDIR=" + tmp}, "--from", url, "--to", "bolt:"+target)
		if code != 2 || !strings.Contains(stderr, "copy stopped") {
			t.Fatalf("%v: exit %d\n%s", sig, code, stderr)
		}
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Fatalf("%v: left in the temporary directory: %v", sig, left)
		}
		if left, _ := filepath.Glob(target + "*"); len(left) > 0 {
			t.Fatalf("%v: left: %v", sig, left)
		}
		os.Remove(tmp)
	}
}

// The source of a copy is only read: a bbolt source is left byte for byte
// as it was, and one on a read-only file system — a backup restored from a
// read-only volume — is copied (it failed: "read-only file system").
func TestStoreCopyReadsTheSourceOnly(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	p := serveOn(t, "--db", src)
	want(t, p, 201, "POST", "/v1/assignments", grantBody("user:ann", tm, "analyst", `{"type":"service"}`))
	p.Stop(t)
	before, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target.db")
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", "bolt:"+target); code != 0 {
		t.Fatalf("copy: exit %d\n%s%s", code, out, stderr)
	}
	if after, _ := os.ReadFile(src); !bytes.Equal(after, before) {
		t.Error("the copy wrote to its source")
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(dir, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("a read-only bind mount needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ro, syscall.MNT_DETACH) })
	if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting read-only: %v", err)
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+filepath.Join(ro, "src.db"), "--to", "bolt:"+target, "--force"); code != 0 {
		t.Fatalf("copy from a read-only file system: exit %d\n%s%s", code, out, stderr)
	}
	if got, want := rawKeys(t, target), rawKeys(t, src); !slices.Equal(got, want) {
		t.Fatal("the copy is not the source")
	}
}

// A restore — a backup copied over the store with --force — gave the
// ids the replaced store had handed out since the backup to new
// assignments again (the copy's counter was raised past the backup's only):
// a tool that kept an id of a grant made after the backup, and removes it
// after the restore, removed another's. The counter passes the replaced
// store's too.
func TestStoreCopyOverAStoreKeepsItsIDsUsed(t *testing.T) {
	dir := t.TempDir()
	live, backup := filepath.Join(dir, "live.db"), filepath.Join(dir, "backup.db")
	imp := func(subjects ...string) {
		t.Helper()
		var lines strings.Builder
		for _, s := range subjects {
			lines.WriteString(grantBody("user:"+s, tm, "analyst", `{"type":"service"}`) + "\n")
		}
		file := filepath.Join(dir, subjects[0]+".ndjson")
		if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, stderr, code := run(t, "import", file, "--db", live); code != 0 {
			t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
		}
	}
	idOf := func(subject string) string {
		t.Helper()
		out, stderr, code := run(t, "export", "--db", live, "--format", "ndjson")
		if code != 0 {
			t.Fatalf("export: exit %d\n%s", code, stderr)
		}
		for _, line := range strings.Split(out, "\n") {
			var a struct{ ID, Subject string }
			if json.Unmarshal([]byte(line), &a) == nil && a.Subject == "user:"+subject {
				return a.ID
			}
		}
		t.Fatalf("no assignment of %s in\n%s", subject, out)
		return ""
	}
	imp("a", "b")
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+live, "--to", "bolt:"+backup); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, stderr)
	}
	imp("after", "after2", "after3")
	lost := idOf("after3") // the highest
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+backup, "--to", "bolt:"+live, "--force"); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, stderr)
	}
	imp("new")
	if got := idOf("new"); got <= lost {
		t.Fatalf("after the restore a new assignment has id %s; the replaced store had handed out %s (its assignment lost with it)", got, lost)
	}
}
