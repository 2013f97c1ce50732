package authoring_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const (
	aliceReads  = `{"subject":"alice","system":"demo","action":"read"}`
	aliceWrites = `{"subject":"alice","system":"demo","action":"write"}`
)

// TestWatchKeepsLastGoodBundle: with serve --watch, broken edits (syntax,
// type, conflicting data) leave decisions unchanged and are reported with
// file:line in the log, /health?bundles and the failure counter; checks
// running all the while never fail; a good edit then changes decisions.
func TestWatchKeepsLastGoodBundle(t *testing.T) {
	dir := demoLayout(t)
	s := serve(t, "--bundle", dir, "--watch", "--watch-debounce", "100ms")
	s.assign(t, `{"subject":"user:alice","system":"demo","role":"viewer","scope":{"type":"service"}}`)
	if !s.allowed(t, aliceReads) || s.allowed(t, aliceWrites) {
		t.Fatal("a viewer reads and does not write")
	}

	// Checks in flight during every reload must all succeed, with the old
	// decision or the new one.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures atomic.Int64
	var checks atomic.Int64
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				// No t.Fatal here: this is not the test's goroutine.
				resp, err := http.Post(s.URL+"/v1/check", "application/json", strings.NewReader(aliceReads))
				checks.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}

	broken := []struct {
		name, file, content string
		want                *regexp.Regexp
	}{
		{"syntax error", "policies/demo/broken.rego", "package permatrix.systems.demo\n\nbroken := {\n",
			regexp.MustCompile(`policies/demo/broken\.rego:\d+: rego_parse_error`)},
		{"type error", "policies/demo/broken.rego", "package permatrix.systems.demo\n\nbroken := 1 + \"one\"\n",
			regexp.MustCompile(`policies/demo/broken\.rego:3: rego_type_error`)},
		{"conflicting data", "systems/data.json", `{"demo": {"name": "Other"}}`,
			regexp.MustCompile(`systems/(demo/)?data\.json: merge error: conflicting values at data\.systems(\.demo|\["demo"\])\.name`)},
	}
	for i, b := range broken {
		if i > 0 {
			_ = os.Remove(filepath.Join(dir, broken[i-1].file))
		}
		write(t, filepath.Join(dir, b.file), b.content)
		eventually(t, b.name+" to be reported", func() bool { return failureCount(t, s) == i+1 })
		health := bundleHealth(t, s)
		if !b.want.MatchString(health["last_error"].(string)) {
			t.Fatalf("%s: /health?bundles last_error %q, want %s", b.name, health["last_error"], b.want)
		}
		// The failure is counted just before it is logged: wait for the line.
		eventually(t, b.name+" to be logged with file:line", func() bool {
			logs := s.Logs()
			return b.want.MatchString(logs) && strings.Contains(logs, "the last good bundle keeps serving")
		})
		if !s.allowed(t, aliceReads) || s.allowed(t, aliceWrites) {
			t.Fatalf("%s changed decisions", b.name)
		}
	}

	// A good edit: the viewer may now write too, and the error is cleared.
	_ = os.Remove(filepath.Join(dir, broken[len(broken)-1].file))
	write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), demoPolicy(`{"read", "write"}`))
	eventually(t, "the fixed edit to change the decision", func() bool { return s.allowed(t, aliceWrites) })
	if h := bundleHealth(t, s); h["last_error"] != nil {
		t.Fatalf("last_error still set after a good reload: %v", h)
	}
	if n := failureCount(t, s); n != len(broken) {
		t.Fatalf("permatrix_bundle_reload_failures_total = %d, want %d", n, len(broken))
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 || checks.Load() == 0 {
		t.Fatalf("%d of %d checks during reloads failed", failures.Load(), checks.Load())
	}
	t.Logf("%d checks during %d reloads, none failed", checks.Load(), len(broken)+1)
}

func bundleHealth(t *testing.T, s *server) map[string]any {
	t.Helper()
	code, raw := s.do(t, "GET", "/health?bundles", "")
	var h struct {
		Bundles map[string]map[string]any `json:"bundles"`
	}
	if code != 200 || json.Unmarshal(raw, &h) != nil || h.Bundles["permatrix"] == nil {
		t.Fatalf("/health?bundles: %d %s", code, raw)
	}
	return h.Bundles["permatrix"]
}

var reloadFailures = regexp.MustCompile(`(?m)^permatrix_bundle_reload_failures_total (\d+)$`)

func failureCount(t *testing.T, s *server) int {
	t.Helper()
	_, raw := s.do(t, "GET", "/metrics", "")
	m := reloadFailures.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no permatrix_bundle_reload_failures_total in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestWatchNeedsABundlePath(t *testing.T) {
	for _, args := range [][]string{{"--watch"}, {"--watch", "--bundle", "https://example.com/b.tar.gz"}} {
		_, errOut, code := permatrix(t, "", append([]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "x.db")}, args...)...)
		if code == 0 || !strings.Contains(errOut, "--watch") {
			t.Fatalf("serve %v: exit %d %s", args, code, errOut)
		}
	}
}

// TestWatchBundleFile: serve --watch on a .tar.gz reloads when the file is
// rebuilt (bundle build writes a temporary file and renames it).
func TestWatchBundleFile(t *testing.T) {
	dir := demoLayout(t)
	file := filepath.Join(t.TempDir(), "demo.tar.gz")
	if _, errOut, code := permatrix(t, "", "bundle", "build", dir, "-o", file); code != 0 {
		t.Fatalf("bundle build: %s", errOut)
	}
	s := serve(t, "--bundle", file, "--watch", "--watch-debounce", "100ms")
	s.assign(t, `{"subject":"user:alice","system":"demo","role":"viewer","scope":{"type":"service"}}`)
	if s.allowed(t, aliceWrites) {
		t.Fatal("a viewer does not write")
	}
	write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), demoPolicy(`{"read", "write"}`))
	if _, errOut, code := permatrix(t, "", "bundle", "build", dir, "-o", file); code != 0 {
		t.Fatalf("bundle build: %s", errOut)
	}
	eventually(t, "the rebuilt bundle to be served", func() bool { return s.allowed(t, aliceWrites) })
	// The reload is logged just after the swap: wait for the line, too.
	eventually(t, "the reload to be logged", func() bool { return strings.Contains(s.Logs(), `"msg":"bundle reloaded"`) })
}

// An edit that leaves the bundle valid but puts it on topdown (here a
// comprehension as a body expression, which OPA's planner would take as
// true) is said at warn on the reload, with the file:line: it makes every
// decision several times slower without failing anything.
func TestWatchSaysWhenTopdownEvaluates(t *testing.T) {
	dir := demoLayout(t)
	s := serve(t, "--bundle", dir, "--watch", "--watch-debounce", "100ms")
	if strings.Contains(s.Logs(), "evaluated by topdown") {
		t.Fatalf("the demo bundle runs on the vm:\n%s", s.Logs())
	}
	policy := strings.Replace(demoPolicy(`{"read"}`), "decision := lib.verdict(reasons, missing)",
		"decision := d if {\n\t[x | some x in reasons]\n\td := lib.verdict(reasons, missing)\n}", 1)
	write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), policy)
	eventually(t, "the reload to say topdown evaluates it", func() bool {
		return strings.Contains(s.Logs(), `"msg":"evaluated by topdown, slower than the vm`) && strings.Contains(s.Logs(), "demo.rego:")
	})
	if s.allowed(t, aliceWrites) {
		t.Fatal("nothing granted, yet allowed")
	}
}
