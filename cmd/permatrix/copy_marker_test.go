package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/test/harness"
)

// killCopyAt starts `store copy` and kills it (SIGKILL) at its first stderr
// line that contains at (at once when at is empty), or lets it finish if
// no line does. It returns whether the copy completed (exit 0).
func killCopyAt(t *testing.T, at string, args ...string) bool {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"store", "copy", "--batch-ops", "20"}, args...)...)
	// What the killed copy leaves in its temporary directory goes with
	// the test's.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if at == "" {
		cmd.Process.Kill()
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		if at != "" && strings.Contains(sc.Text(), at) {
			cmd.Process.Kill()
			break
		}
	}
	io.Copy(io.Discard, pipe)
	return cmd.Wait() == nil
}

// marked reports whether the prefix holds a store copy's mark.
func marked(t *testing.T, cluster *harness.EtcdCluster, prefix string) bool {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/"+prefix+"/m/copying")
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Kvs) > 0
}

// refusesIncomplete waits until sidecar p is not ready, saying the prefix
// holds an incomplete copy, and then holds it to answer a check 503 with
// the same message: never a decision from half a store.
func refusesIncomplete(t *testing.T, what string, p *harness.Process) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, raw := p.Do(t, "GET", "/health/ready", "")
		if code == 503 && strings.Contains(string(raw), "incomplete copy") {
			break
		}
		if code == 200 {
			// Ready is allowed only for a replica not yet at the mark: it
			// serves the whole store it had (never a part).
			servesWhole(t, what+" (ready before the mark reached it)", p, false)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not refused as an incomplete copy: %d %s\n%s", what, code, raw, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, raw := p.Do(t, "GET", "/health", ""); code != 503 || !strings.Contains(string(raw), "incomplete copy") {
		t.Fatalf("%s: /health on an incomplete copy: %d %s", what, code, raw)
	}
	// No write either: it would be judged on part of a store, and the
	// copy run again writes over it.
	if code, raw := p.Do(t, "POST", "/v1/assignments", grantBody("user:w", tm, "analyst", `{"type":"service"}`)); code != 503 || !strings.Contains(string(raw), "incomplete copy") {
		t.Fatalf("%s: a write on an incomplete copy: %d %s", what, code, raw)
	}
	// The last user is not copied yet: a decision about it the decision
	// cache kept from before the copy is not answered either.
	for _, u := range []int{0, 2999} {
		code, raw := p.Do(t, "POST", "/v1/check", fmt.Sprintf(`{"subject":"u%04d","system":%q,"action":"edit_users"}`, u, tm))
		if code != 503 || !strings.Contains(string(raw), "etcd prefix /half/ holds an incomplete copy") || !strings.Contains(string(raw), "--force") {
			t.Fatalf("%s: a check on an incomplete copy: %d %s", what, code, raw)
		}
	}
}

// servesWhole holds sidecar p to answer from a whole copy: the first and
// the last user copied are both allowed (or, with empty, neither: the
// prefix as it was before any copy).
func servesWhole(t *testing.T, what string, p *harness.Process, mustBeFull bool) {
	t.Helper()
	allowed := 0
	for _, u := range []int{0, 2999} {
		code, raw := p.Do(t, "POST", "/v1/check", fmt.Sprintf(`{"subject":"u%04d","system":%q,"action":"edit_users"}`, u, tm))
		if code == 503 && strings.Contains(string(raw), "incomplete copy") {
			return // the mark reached it meanwhile
		}
		var d struct{ Allow bool }
		if code != 200 || json.Unmarshal(raw, &d) != nil {
			t.Fatalf("%s: check: %d %s", what, code, raw)
		}
		if d.Allow {
			allowed++
		}
	}
	if allowed == 1 || (mustBeFull && allowed != 2) {
		t.Fatalf("%s: %d of the first and last users copied are allowed: half a store served", what, allowed)
	}
}

// A store copy into etcd killed at any point never leaves sidecars serving
// part of a store: sidecars already on the prefix, new ones and restarted
// ones are not ready and answer 503 naming the prefix and the fix, the
// copy as a source is refused, a copy without --force is refused, and the
// copy run again with --force completes it, after which they all serve
// it. (Before, sidecars were ready and decided from whatever part was
// copied, and a restarted one set its replica aside as damaged.)
func TestInterruptedCopyIntoEtcdIsNotServed(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%04d", i), tm, "admin", `{"type":"service"}`) + "\n")
	}
	file := filepath.Join(dir, "a.ndjson")
	os.WriteFile(file, []byte(lines.String()), 0o600)
	src := filepath.Join(dir, "src.db")
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	half := cluster.StoreURL("half")
	// A sidecar serving the prefix before any copy.
	early := serveOn(t, "--store", half, "--replica", filepath.Join(dir, "early.db"))
	waitReady(t, early)
	for range 3 { // asked again and again: the decision cache keeps it
		want(t, early, 200, "POST", "/v1/check", fmt.Sprintf(`{"subject":"u2999","system":%q,"action":"edit_users"}`, tm))
	}

	// Killed between batches: the prefix holds part of the store.
	if killCopyAt(t, `"done"`, "--from", "bolt:"+src, "--to", half) {
		t.Fatal("the copy was not killed half-way")
	}
	endKilledCopyLock(t, cluster, "half")
	refusesIncomplete(t, "the sidecar serving before the copy", early)
	replica := filepath.Join(dir, "rep.db")
	late := serveOn(t, "--store", half, "--replica", replica)
	refusesIncomplete(t, "a sidecar started after the copy", late)
	late.Stop(t)
	late = serveOn(t, "--store", half, "--replica", replica)
	refusesIncomplete(t, "the same sidecar restarted", late)
	if strings.Contains(late.Logs(), "damaged") {
		t.Fatalf("the replica of an incomplete copy was taken for damaged:\n%s", late.Logs())
	}
	if _, err := os.Stat(replica + ".damaged"); err == nil {
		t.Fatal("the replica of an incomplete copy was set aside as damaged")
	}
	out, stderr, code := run(t, "store", "copy", "--from", half, "--to", "bolt:"+filepath.Join(dir, "out.db"))
	if code != 2 || !strings.Contains(stderr, "holds an incomplete copy") || strings.Count(stderr, "permatrix:") != 1 {
		t.Fatalf("copying from an incomplete copy: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "store", "copy", "--from", "bolt:"+src, "--to", half)
	if code != 2 || !strings.Contains(stderr, "holds an incomplete copy") || !strings.Contains(stderr, "--force") {
		t.Fatalf("copying into an incomplete copy without --force: exit %d\n%s%s", code, out, stderr)
	}

	// Killed at other points of a copy run again: at once (before or
	// after the mark), once the last batch is in (before the mark is
	// removed, or after), half-way again. The sidecars serve the whole
	// store or refuse; never a part.
	for _, at := range []string{"", "finished", "target cleared", `"done"`} {
		done := killCopyAt(t, at, "--from", "bolt:"+src, "--to", half, "--force")
		endKilledCopyLock(t, cluster, "half")
		m := marked(t, cluster, "half")
		t.Logf("killed at %q: completed %v, marked %v", at, done, m)
		if m {
			refusesIncomplete(t, "killed at "+at, early)
			refusesIncomplete(t, "killed at "+at, late)
		} else {
			waitReady(t, early)
			servesWhole(t, "killed at "+at, early, true)
		}
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", half, "--force"); code != 0 {
		t.Fatalf("the copy run again: exit %d\n%s%s", code, out, stderr)
	}
	for what, p := range map[string]*harness.Process{"early": early, "late": late} {
		waitReady(t, p)
		servesWhole(t, what+" after the copy completed", p, true)
	}
}

// A copy killed (SIGKILL) leaves the directory of its etcd replicas in the
// temporary directory — a whole store's worth each time, which nothing
// removed. The next copy removes such directories: those a killed copy
// left, and old ones from before copies locked theirs; not one a running
// copy holds, nor a new one not yet locked.
func TestStoreCopyRemovesWhatKilledCopiesLeft(t *testing.T) {
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
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"TMPDIR=" + tmp}
	target := filepath.Join(dir, "target.db")
	if stderr, code := interruptCopy(t, syscall.SIGKILL, env, "--from", url, "--to", "bolt:"+target); code != -1 {
		t.Fatalf("killed: exit %d\n%s", code, stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "permatrix-copy*")); len(left) != 1 {
		t.Fatalf("a killed copy left %v (want its directory)", left)
	}
	// A running copy's directory (locked), a new one not locked yet, an
	// old release's (no owner file, hours old).
	running, fresh, old := filepath.Join(tmp, "permatrix-copy-running"), filepath.Join(tmp, "permatrix-copy-fresh"), filepath.Join(tmp, "permatrix-copy-old")
	for _, d := range []string{running, fresh, old} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "to.db"), []byte("x"), 0o600)
	}
	os.WriteFile(filepath.Join(running, "owner"), []byte("1\n"), 0o600)
	lock, err := os.Open(running)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	hoursAgo := time.Now().Add(-3 * time.Hour)
	os.Chtimes(old, hoursAgo, hoursAgo)

	cmd := exec.Command(bin, "store", "copy", "--from", url, "--to", "bolt:"+target, "--force")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the next copy: %v\n%s", err, out)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "permatrix-copy*"))
	if want := []string{fresh, running}; !slices.Equal(left, want) {
		t.Fatalf("left in the temporary directory: %v, want %v", left, want)
	}
}

// startCopy starts `store copy` and waits until its stderr has a line that
// contains at (a progress line: the copy holds the prefix and has marked
// it). It returns the copy, still running, and what it wrote to stderr so
// far; finish lets it end and returns its exit error and all of stderr.
func startCopy(t *testing.T, at string, args ...string) (cmd *exec.Cmd, finish func() (error, string)) {
	t.Helper()
	cmd = exec.Command(bin, append([]string{"store", "copy", "--batch-ops", "20"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var stderr strings.Builder
	sc := bufio.NewScanner(pipe)
	found := false
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), at) {
			found = true
			break
		}
	}
	if !found {
		cmd.Wait()
		t.Fatalf("the copy ended before %q:\n%s", at, stderr.String())
	}
	return cmd, func() (error, string) {
		rest, _ := io.ReadAll(pipe)
		stderr.Write(rest)
		return cmd.Wait(), stderr.String()
	}
}

// copyLocks are the keys of the prefix's copy lock and the leases they are
// on.
func copyLocks(t *testing.T, cluster *harness.EtcdCluster, prefix string) (*clientv3.Client, []clientv3.LeaseID) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/"+prefix+"/c/copy/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var leases []clientv3.LeaseID
	for _, kv := range resp.Kvs {
		leases = append(leases, clientv3.LeaseID(kv.Lease))
	}
	return cli, leases
}

// endKilledCopyLock ends the copy lock a killed copy left on the prefix,
// as its lease's expiry would within 10s (checked): the next copy is not
// refused as running.
func endKilledCopyLock(t *testing.T, cluster *harness.EtcdCluster, prefix string) {
	t.Helper()
	cli, leases := copyLocks(t, cluster, prefix)
	for _, l := range leases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ttl, err := cli.TimeToLive(ctx, l)
		if err == nil && ttl.TTL > 10 {
			t.Errorf("a killed copy's lock outlives it by %ds", ttl.TTL)
		}
		cli.Revoke(ctx, l)
		cancel()
	}
}

// Two store copies into one etcd prefix at once ran into each other: the
// second found the first's mark, which cannot tell a running copy from a
// killed one, and with --force deleted and copied over what the first was
// writing. A running copy holds the prefix's copy lock, on a lease it
// keeps alive: a second copy is refused while it runs, --force or not,
// and the first completes a whole store. A copy killed leaves its mark,
// but its lock ends with its lease: the next --force copy completes.
func TestConcurrentCopiesIntoEtcd(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:u%04d", i), tm, "admin", `{"type":"service"}`) + "\n")
	}
	file := filepath.Join(dir, "a.ndjson")
	os.WriteFile(file, []byte(lines.String()), 0o600)
	src := filepath.Join(dir, "src.db")
	if out, stderr, code := run(t, "import", file, "--db", src); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	// A second source, smaller: a copy of it over the first's would leave
	// neither whole.
	other := filepath.Join(dir, "other.db")
	os.WriteFile(file, []byte(grantBody("user:intruder", tm, "admin", `{"type":"service"}`)+"\n"), 0o600)
	if out, stderr, code := run(t, "import", file, "--db", other); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, stderr)
	}
	cluster := harness.StartEtcdCluster(t, 1)
	url := cluster.StoreURL("half") // the prefix refusesIncomplete and servesWhole name

	_, finish := startCopy(t, `"done"`, "--from", "bolt:"+src, "--to", url, "--force")
	for _, force := range []bool{true, false} {
		args := []string{"store", "copy", "--from", "bolt:" + other, "--to", url}
		if force {
			args = append(args, "--force")
		}
		out, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "a store copy into etcd prefix /half/ is running") || !strings.Contains(stderr, "--force or not") {
			t.Fatalf("a second copy while one runs (--force %v): exit %d\n%s%s", force, code, out, stderr)
		}
	}
	if err, stderr := finish(); err != nil {
		t.Fatalf("the first copy: %v\n%s", err, stderr)
	}
	if marked(t, cluster, "half") {
		t.Fatal("the copy completed and left its mark")
	}
	if _, leases := copyLocks(t, cluster, "half"); len(leases) != 0 {
		t.Fatalf("the copy ended and left its lock: %v", leases)
	}
	p := serveOn(t, "--store", url, "--replica", filepath.Join(dir, "rep.db"))
	waitReady(t, p)
	servesWhole(t, "after the first copy", p, true)
	var d struct{ Allow bool }
	json.Unmarshal(want(t, p, 200, "POST", "/v1/check", fmt.Sprintf(`{"subject":"intruder","system":%q,"action":"edit_users"}`, tm)), &d)
	if d.Allow {
		t.Fatal("the refused copy wrote into the prefix")
	}

	// Killed half-way: the mark stays (the prefix is not served), the
	// lock goes with its lease. Its lease is short; revoked here as its
	// expiry would.
	killed, _ := startCopy(t, `"done"`, "--from", "bolt:"+src, "--to", url, "--force")
	killed.Process.Kill()
	killed.Wait()
	if !marked(t, cluster, "half") {
		t.Fatal("a killed copy left no mark")
	}
	refusesIncomplete(t, "after a copy was killed", p)
	endKilledCopyLock(t, cluster, "half")
	out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", url)
	if code != 2 || !strings.Contains(stderr, "holds an incomplete copy") || !strings.Contains(stderr, "--force") {
		t.Fatalf("a copy over a killed one's mark without --force: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+src, "--to", url, "--force"); code != 0 {
		t.Fatalf("a --force copy after one was killed: exit %d\n%s%s", code, out, stderr)
	}
	waitReady(t, p)
	servesWhole(t, "after the copy run again", p, true)
}
