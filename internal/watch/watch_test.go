package watch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/watch"
)

const debounce = 250 * time.Millisecond // wide: a loaded CI machine stalls goroutines for tens of milliseconds

// settle is how long a test waits to be sure no further call comes: well
// over the debounce, so a second burst's call would have arrived.
const settle = 4 * debounce

// recorder counts the calls of changed and keeps the errors of failed.
type recorder struct {
	mu     sync.Mutex
	calls  int
	errs   []error
	called chan struct{}
}

func (r *recorder) changed() {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	select {
	case r.called <- struct{}{}:
	default:
	}
}

func (r *recorder) failed(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// start watches path until the test ends.
func start(t *testing.T, path string, ignore ...string) *recorder {
	t.Helper()
	r := &recorder{called: make(chan struct{}, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := watch.Start(ctx, path, debounce, r.changed, r.failed, ignore...); err != nil {
		t.Fatalf("Start(%s): %v", path, err)
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, err := range r.errs {
			t.Errorf("failed(%v)", err)
		}
	})
	return r
}

// expect waits until the number of calls is want and stays there for settle.
func (r *recorder) expect(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.count() < want && time.Now().Before(deadline) {
		select {
		case <-r.called:
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(settle)
	if got := r.count(); got != want {
		t.Fatalf("%s: %d calls of changed, want %d", what, got, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// saveByRename writes path as editors and build tools do: a temporary file
// in the same directory, renamed over it.
func saveByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func bundleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"policies/demo", "systems/demo"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n")
	writeFile(t, filepath.Join(dir, "systems/demo/data.json"), "{}\n")
	return dir
}

func TestNothingChangedNoCall(t *testing.T) {
	t.Parallel()
	r := start(t, bundleDir(t))
	r.expect(t, 0, "no change")
}

func TestWriteInTree(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n\nx := 1\n")
	r.expect(t, 1, "one write")
	// A later, separate change is a second call.
	writeFile(t, filepath.Join(dir, "systems/demo/data.json"), `{"a":1}`)
	r.expect(t, 2, "a second write after the first settled")
}

func TestBurstCoalesces(t *testing.T) {
	t.Parallel()
	burst(t, func() bool {
		dir := bundleDir(t)
		r := start(t, dir)
		// A git checkout: many files, many events, each well within the
		// debounce of the one before.
		var p pace
		for i := range 20 {
			p.step()
			writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), strings.Repeat("#\n", i)+"package demo\n")
			writeFile(t, filepath.Join(dir, "policies/demo/new.rego"), "package demo\n")
			time.Sleep(debounce / 10)
		}
		p.step()
		if err := os.Remove(filepath.Join(dir, "policies/demo/new.rego")); err != nil {
			t.Fatal(err)
		}
		if !p.kept(t) {
			return false
		}
		r.expect(t, 1, "a burst of 41 changes")
		return true
	})
}

// The burst keeps the call back as long as events keep coming: the call
// comes a debounce after the last event, not after the first.
func TestCallAfterTheLastEvent(t *testing.T) {
	t.Parallel()
	burst(t, func() bool {
		dir := bundleDir(t)
		r := start(t, dir)
		file := filepath.Join(dir, "policies/demo/demo.rego")
		began := time.Now()
		var p pace
		var last time.Time // the last write: its event comes after it
		for i := range 8 {
			if i > 0 {
				time.Sleep(debounce / 4)
			}
			p.step()
			writeFile(t, file, "package demo\n")
			last = time.Now()
		}
		if !p.kept(t) {
			return false
		}
		select {
		case <-r.called:
		case <-time.After(5 * time.Second):
			t.Fatal("no call")
		}
		// Due a whole debounce after the last event (the writes span 1.75
		// debounces); half of it leaves room for a loaded machine (a timer
		// never fires early).
		if at := time.Since(last); at < debounce/2 {
			t.Fatalf("called %v after the last event (%v after the first): the debounce restarts with every event", at, time.Since(began))
		}
		r.expect(t, 1, "a slow burst")
		return true
	})
}

// pace times a burst's steps. A burst is one only if each step comes
// within the debounce of the one before, which a loaded machine does not
// promise: the test's goroutine stalled past the debounce, the watch saw
// two bursts and called twice, and the test failed for nothing.
type pace struct {
	last time.Time
	gap  time.Duration // the longest between two steps
}

// step marks a step of the burst.
func (p *pace) step() {
	now := time.Now()
	if !p.last.IsZero() {
		p.gap = max(p.gap, now.Sub(p.last))
	}
	p.last = now
}

// kept reports whether every step came within three quarters of the
// debounce of the one before (the last quarter is room for the watch's
// goroutine to get its events late).
func (p *pace) kept(t *testing.T) bool {
	t.Helper()
	if p.gap < debounce*3/4 {
		return true
	}
	t.Logf("a step of the burst came %v after the one before (debounce %v): no burst; again", p.gap, debounce)
	return false
}

// burst runs attempt, each time with a new watch, until one keeps its pace
// (attempt reports whether it did, before it asserts anything): at most
// 10 times, then the test is skipped — on a machine that loaded it proves
// nothing either way.
func burst(t *testing.T, attempt func() bool) {
	t.Helper()
	for range 10 {
		if attempt() {
			return
		}
	}
	t.Skip("10 bursts in a row could not keep their pace: the machine is too loaded for this test")
}

func TestEditorSaveByRename(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	saveByRename(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n\ny := 2\n")
	r.expect(t, 1, "write to a temporary file, rename over")
}

func TestDeleteAndRename(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	if err := os.Remove(filepath.Join(dir, "systems/demo/data.json")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 1, "a deleted catalog")
	if err := os.Rename(filepath.Join(dir, "policies/demo/demo.rego"), filepath.Join(dir, "policies/demo/demo.rego.off")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 2, "a renamed policy")
	// A whole directory removed.
	if err := os.RemoveAll(filepath.Join(dir, "policies/demo")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 3, "a removed directory")
}

// A directory created after Start (a new vendor folder) is watched too:
// a file written into it later is a change.
func TestNewDirectoryWatched(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	sub := filepath.Join(dir, "policies/acme/deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 1, "a new directory")
	writeFile(t, filepath.Join(sub, "acme.rego"), "package acme\n")
	r.expect(t, 2, "a file in a directory made after Start")
	// A tree moved in from elsewhere (a release unpacked next door).
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "systems/acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(other, "systems/acme"), filepath.Join(dir, "systems/acme")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 3, "a directory moved in")
	writeFile(t, filepath.Join(dir, "systems/acme/data.json"), "{}")
	r.expect(t, 4, "a file in a directory moved in")
}

// Changing only a file's mode changes no content: no reload.
func TestChmodIgnored(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	if err := os.Chmod(filepath.Join(dir, "policies/demo/demo.rego"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 0, "a chmod")
}

// A single file (a bundle .tar.gz) is watched through its directory:
// other files there are not its changes; replacing it by rename is.
func TestSingleFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.tar.gz")
	writeFile(t, file, "v1")
	r := start(t, file)
	writeFile(t, filepath.Join(dir, "other.tar.gz"), "x")
	saveByRename(t, filepath.Join(dir, "notes.txt"), "x")
	r.expect(t, 0, "other files in the directory")
	saveByRename(t, file, "v2")
	r.expect(t, 1, "the file replaced by rename")
	writeFile(t, file, "v3")
	r.expect(t, 2, "the file written in place")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 3, "the file deleted")
	writeFile(t, file, "v4")
	r.expect(t, 4, "the file created again")
}

// A single file mounted from a Kubernetes ConfigMap: bundle.tar.gz is a
// link to ..data/bundle.tar.gz, ..data a link to a timestamped directory,
// and an update writes a new directory, renames a new ..data link over the
// old one and removes the old directory (kubelet's AtomicWriter). Each
// update is a change; the files of the directory it left are not.
func TestSingleFileConfigMapMount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	version := func(n int) string {
		ts := filepath.Join(dir, fmt.Sprintf("..2026_11_26_0%d", n))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(ts, "bundle.tar.gz"), fmt.Sprintf("v%d", n))
		return ts
	}
	swap := func(ts string) {
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	v1 := version(1)
	swap(v1)
	if err := os.Symlink("..data/bundle.tar.gz", filepath.Join(dir, "bundle.tar.gz")); err != nil {
		t.Fatal(err)
	}
	r := start(t, filepath.Join(dir, "bundle.tar.gz"))
	writeFile(t, filepath.Join(v1, "notes.txt"), "x")
	r.expect(t, 0, "another file in the mounted directory")

	v2 := version(2)
	r.expect(t, 0, "the next version written, not yet swapped in")
	swap(v2)
	if err := os.RemoveAll(v1); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 1, "the ConfigMap updated")
	v3 := version(3)
	swap(v3)
	r.expect(t, 2, "the ConfigMap updated again")
	writeFile(t, filepath.Join(v2, "bundle.tar.gz"), "stale")
	r.expect(t, 2, "a write in the version the mount left")
	writeFile(t, filepath.Join(v3, "bundle.tar.gz"), "v3b")
	r.expect(t, 3, "the file the mount names written in place")
}

// A single file that is a symlink into another directory: writes to the
// file it points to are changes, pointing it elsewhere is one, and the
// file it left is not watched.
func TestSingleFileSymlink(t *testing.T) {
	t.Parallel()
	dir, releases := t.TempDir(), t.TempDir()
	a, b := filepath.Join(releases, "a.tar.gz"), filepath.Join(releases, "b.tar.gz")
	writeFile(t, a, "a1")
	writeFile(t, b, "b1")
	link := filepath.Join(dir, "bundle.tar.gz")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	r := start(t, link)
	writeFile(t, b, "b2")
	r.expect(t, 0, "another file next to the one the link points to")
	writeFile(t, a, "a2")
	r.expect(t, 1, "the file the link points to written in place")
	saveByRename(t, a, "a3")
	r.expect(t, 2, "the file the link points to replaced by rename")
	if err := os.Symlink(b, link+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".tmp", link); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 3, "the link pointed at b")
	writeFile(t, a, "a4")
	r.expect(t, 3, "a write to the file the link left")
	writeFile(t, b, "b3")
	r.expect(t, 4, "a write to the file the link points to now")
}

// A relative path names the same file as its absolute form.
func TestSingleFileRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, "bundle.tar.gz", "v1")
	r := start(t, "./bundle.tar.gz")
	writeFile(t, "bundle.tar.gz", "v2")
	r.expect(t, 1, "a write to ./bundle.tar.gz")
}

// A bundle directory reached through a symlink (a "current" link to the
// deployed release) is watched where the link points; pointing the link at
// another release is a change, and from then on the new release is
// watched, not the old one.
func TestSymlinkedDirectory(t *testing.T) {
	t.Parallel()
	releases := t.TempDir()
	v1, v2 := filepath.Join(releases, "v1"), filepath.Join(releases, "v2")
	if err := os.Rename(bundleDir(t), v1); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(releases, "current")
	if err := os.Symlink("v1", current); err != nil {
		t.Fatal(err)
	}
	r := start(t, current)
	writeFile(t, filepath.Join(current, "policies/demo/demo.rego"), "package demo\n\nz := 3\n")
	r.expect(t, 1, "a write under a symlinked bundle directory")

	// The next release unpacked next to the link is not a change yet.
	if err := os.Rename(bundleDir(t), v2); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(v2, "policies/demo/demo.rego"), "package demo\n\nv := 2\n")
	r.expect(t, 1, "another release unpacked next to the link")

	// ln -sfn v2 current: a new link renamed over the old one.
	if err := os.Symlink("v2", current+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current+".tmp", current); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 2, "the link pointed at v2")
	writeFile(t, filepath.Join(v2, "systems/demo/data.json"), `{"v":2}`)
	r.expect(t, 3, "a write in the release the link points to now")
	writeFile(t, filepath.Join(v1, "systems/demo/data.json"), `{"v":1}`)
	if err := os.MkdirAll(filepath.Join(v1, "policies/old"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.expect(t, 3, "writes in the release the link left")
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	missing := filepath.Join(t.TempDir(), "nope")
	err := watch.Start(ctx, missing, debounce, func() { t.Error("called") }, func(error) {})
	if !os.IsNotExist(err) {
		t.Fatalf("Start on a missing path: %v, want not-exist", err)
	}
}

// watchGoroutines counts the goroutines of this package and of fsnotify.
func watchGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "permatrix/internal/watch.loop") || strings.Contains(g, "github.com/fsnotify/fsnotify") {
			n++
		}
	}
	return n
}

// Ending the context ends the watch: its goroutines are gone, the inotify
// descriptors closed, and no call comes after.
func TestStopLeaksNothing(t *testing.T) {
	// The watches of earlier tests end with their cleanup: let them go.
	for deadline := time.Now().Add(3 * time.Second); watchGoroutines() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	before := watchGoroutines()
	fdsBefore := openFDs(t)
	dir := bundleDir(t)
	// Calls made once a watch's context had ended: a call before is no
	// fault (the test's goroutine stalled past the debounce, on a loaded
	// machine, before it ended the watch).
	late := make([]*atomic.Int32, 5)
	for i := range late {
		ctx, cancel := context.WithCancel(context.Background())
		n := new(atomic.Int32)
		late[i] = n
		changed := func() {
			if ctx.Err() != nil {
				n.Add(1)
			}
		}
		if err := watch.Start(ctx, dir, debounce, changed, func(error) {}); err != nil {
			t.Fatal(err)
		}
		if watchGoroutines() <= before {
			t.Fatal("Start runs no goroutine: the count below proves nothing")
		}
		// A change pending in the debounce when the watch ends.
		writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n")
		time.Sleep(debounce / 4)
		cancel()
	}
	deadline := time.Now().Add(30 * time.Second) // a guard only
	for watchGoroutines() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := watchGoroutines(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d watch goroutines left (%d before):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if fds := openFDs(t); fds > fdsBefore {
		t.Errorf("%d open descriptors, %d before: inotify descriptors left open", fds, fdsBefore)
	}
	time.Sleep(settle)
	for i, n := range late {
		if n.Load() != 0 {
			t.Errorf("watch %d called changed after its context ended", i)
		}
	}
}

func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

// A single file reached through a chain of links in other directories — a
// link to the file under a "current" release link, or a path whose own
// directory is such a link — reloads when any link of the chain is pointed
// elsewhere, wherever that link lives.
func TestSingleFileLinkChain(t *testing.T) {
	t.Parallel()
	mount, srv := t.TempDir(), t.TempDir()
	release := func(n int) string {
		d := filepath.Join(srv, fmt.Sprintf("v%d", n))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "bundle.tar.gz"), fmt.Sprintf("v%d", n))
		return d
	}
	current := filepath.Join(srv, "current")
	point := func(n int) { // ln -sfn vN current
		if err := os.Symlink(fmt.Sprintf("v%d", n), current+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(current+".tmp", current); err != nil {
			t.Fatal(err)
		}
	}
	release(1)
	point(1)
	link := filepath.Join(mount, "bundle.tar.gz")
	if err := os.Symlink(filepath.Join(current, "bundle.tar.gz"), link); err != nil {
		t.Fatal(err)
	}
	viaLink := start(t, link)                                   // mount/bundle.tar.gz → srv/current/bundle.tar.gz
	viaDir := start(t, filepath.Join(current, "bundle.tar.gz")) // its directory is the link
	release(2)
	viaLink.expect(t, 0, "a release written, not yet current")
	viaDir.expect(t, 0, "a release written, not yet current")
	point(2)
	viaLink.expect(t, 1, "current pointed at v2 (the second link of the chain)")
	viaDir.expect(t, 1, "current pointed at v2 (the path's directory)")
	writeFile(t, filepath.Join(srv, "v2", "bundle.tar.gz"), "v2b")
	viaLink.expect(t, 2, "the current release's file written in place")
	viaDir.expect(t, 2, "the current release's file written in place")
	writeFile(t, filepath.Join(srv, "v1", "bundle.tar.gz"), "v1b")
	viaLink.expect(t, 2, "a write in the release left")
	viaDir.expect(t, 2, "a write in the release left")
}

// A single file whose directory is removed and made again (a build that
// starts with rm -rf out/) is watched in the new directory: its creation
// is a change, and so is every write after it.
func TestSingleFileTargetDirectoryRemade(t *testing.T) {
	t.Parallel()
	mount, build := t.TempDir(), t.TempDir()
	out := filepath.Join(build, "out")
	makeOut := func(content string) {
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(out, "bundle.tar.gz"), content)
	}
	makeOut("1")
	link := filepath.Join(mount, "bundle.tar.gz")
	if err := os.Symlink(filepath.Join(out, "bundle.tar.gz"), link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, filepath.Join(out, "bundle.tar.gz")} { // through a link, and directly
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			r := start(t, path)
			want := 0
			for round := range 3 {
				if err := os.RemoveAll(out); err != nil {
					t.Fatal(err)
				}
				want++
				r.expect(t, want, fmt.Sprintf("round %d: the directory removed", round))
				makeOut(fmt.Sprintf("%d-made", round))
				want++
				r.expect(t, want, fmt.Sprintf("round %d: the directory made again with the file", round))
				writeFile(t, filepath.Join(out, "bundle.tar.gz"), fmt.Sprintf("%d-written", round))
				want++
				r.expect(t, want, fmt.Sprintf("round %d: the file written in place", round))
			}
		})
	}
}

// TestOtherFilesIgnored: files a bundle is not read from — the store
// (./permatrix.db, where `permatrix serve --bundle . --watch` run from the
// repository keeps it by default), a decision log, an editor's swap or
// backup file — are no change. Every store write and every decision-log
// flush reloaded the bundle (a compile, and the decision cache dropped),
// and writes coming faster than the debounce held back the reload of a
// real edit for as long as they came.
func TestOtherFilesIgnored(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	r := start(t, dir)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			for _, name := range []string{"permatrix.db", "permatrix", "decisions.jsonl", "policies/demo/.demo.rego.swp", "policies/demo/demo.rego~"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprint(i)), 0o644); err != nil {
					t.Error(err)
					return
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(debounce / 4):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	r.expect(t, 0, "writes to files no bundle is read from")
	writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n\nz := 3\n")
	r.expect(t, 1, "a policy edit while those files are written")
}

// A file Start is told to ignore (serve's --decision-log) never counts,
// though its name is a bundle's: `serve --watch --bundle .
// --decision-log decisions.json` in the repository reloaded the bundle
// after every decision.
func TestIgnoredFile(t *testing.T) {
	t.Parallel()
	dir := bundleDir(t)
	log := filepath.Join(dir, "decisions.json")
	writeFile(t, log, "")
	r := start(t, dir, filepath.Join(dir, ".", "decisions.json"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = fmt.Fprintf(f, "{\"decision_id\": \"%d\"}\n", i)
				f.Close()
			}
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(debounce / 4):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	r.expect(t, 0, "appends to the ignored decision log")
	writeFile(t, filepath.Join(dir, "policies/demo/demo.rego"), "package demo\n\nz := 3\n")
	r.expect(t, 1, "a policy edit while the decision log is written")
}
