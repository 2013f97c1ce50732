package decisionlog_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

const tm = "celonis-task-mining"

// receiver is a decision-log service: it takes OPA's uploads (POST /logs,
// a gzipped JSON array of events), failing the first `fail` of them.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	events []map[string]any
	posts  int
	fail   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/logs" {
		rc.t.Errorf("upload: %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("upload headers: %v", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		rc.t.Errorf("upload is not gzip: %v", err)
		return
	}
	var batch []map[string]any
	if err := json.NewDecoder(zr).Decode(&batch); err != nil {
		rc.t.Errorf("upload is not a JSON array: %v", err)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	if rc.posts <= rc.fail {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	rc.events = append(rc.events, batch...)
}

func (rc *receiver) received() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.events...)
}

// maskPolicy ships in the bundle: OPA's data.system.log.mask, beside the
// configured mask list.
const maskPolicy = `package system.log

mask contains {"op": "upsert", "path": "/input/context/token", "value": "***"} if input.input.context.token

mask contains "/result/reasons" if input.path == "permatrix/decision"

mask contains "/input/x" if boom

boom := 1 if input.input.context.boom
boom := 2 if input.input.context.boom
`

// bundleWithMask is the repository's policies and data with maskPolicy at
// policies/system/log.rego.
func bundleWithMask(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"policies", "systems"} {
		src := filepath.Join(harness.Root(), sub)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(harness.Root(), p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return write(filepath.Join(dir, rel), string(b))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := write(filepath.Join(dir, "policies", "system", "log.rego"), maskPolicy); err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func newLogger(t *testing.T, opaConfig, decisionLogs string, o decisionlog.Options) *decisionlog.Logger {
	t.Helper()
	ctx := context.Background()
	mgr, err := management.New(ctx, []byte(opaConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	o.Manager = mgr
	if decisionLogs != "" {
		o.Config = []byte(decisionLogs)
	}
	l, err := decisionlog.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestShipsInOPAFormat: every decision path is logged — a check, each
// batch item, forward-auth, the Data API — and reaches an HTTP service as
// OPA ships it (gzipped batches, retried after a failed upload), in OPA's
// schema, with the mask list and the bundle's mask policy applied; the
// local file holds the same entries.
func TestShipsInOPAFormat(t *testing.T) {
	rc := &receiver{t: t, fail: 1}
	svc := httptest.NewServer(rc)
	defer svc.Close()
	file := filepath.Join(t.TempDir(), "decisions.jsonl")
	dl := newLogger(t, `{"services": {"collector": {"url": "`+svc.URL+`"}}, "labels": {"app": "payroll"}}`,
		`{"service": "collector", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}}`,
		decisionlog.Options{File: file, Mask: []string{"/input/context/password"}})
	s := harness.Start(t, harness.Options{Bundle: bundleWithMask(t), DecisionLog: dl})
	s.Assign(map[string]any{"subject": "user:ann", "system": tm, "permission": "edit_users", "scope": map[string]any{"type": "service"}})

	check := map[string]any{"subject": "ann", "system": tm, "action": "edit_users",
		"context": map[string]any{"password": "hunter2", "token": "abc", "keep": "yes"}}
	r := s.Check(check)
	if r.Status != 200 || r.Body["allow"] != true || len(r.Body["reasons"].([]any)) == 0 {
		t.Fatalf("check: %d %s", r.Status, r.Raw)
	}
	checkID := r.Body["decision_id"].(string)
	// The client's answer is not masked.
	if r.Body["reasons"] == nil {
		t.Fatal("the answer lost its reasons")
	}
	batch := s.Do("POST", "/v1/check/batch", map[string]any{"checks": []any{check, map[string]any{"subject": "bob", "system": tm, "action": "edit_users"}}}, false)
	if batch.Status != 200 {
		t.Fatalf("batch: %d %s", batch.Status, batch.Raw)
	}
	fa := s.Do("GET", "/v1/forward-auth", nil, false, "X-Forwarded-User", "ann", "X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users")
	if fa.Status != 200 {
		t.Fatalf("forward-auth: %d %s", fa.Status, fa.Raw)
	}
	data := s.Do("POST", "/v1/data/permatrix/allow", map[string]any{"input": map[string]any{"subject": "ann", "system": tm, "action": "edit_users"}}, false)
	if data.Status != 200 || data.Body["result"] != true || data.Body["decision_id"] == "" {
		t.Fatalf("data API: %d %s", data.Status, data.Raw)
	}
	want := 5 // check, 2 batch items, forward-auth, data API

	var got []map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = rc.received(); len(got) >= want {
			break
		}
	}
	if len(got) != want {
		t.Fatalf("the service received %d entries, want %d: %v", len(got), want, got)
	}
	byID := map[string]map[string]any{}
	for _, e := range got {
		byID[e["decision_id"].(string)] = e
		labels := e["labels"].(map[string]any)
		if labels["app"] != "payroll" || labels["id"] == "" || labels["version"] == "" {
			t.Errorf("labels: %v", labels)
		}
		if e["bundles"].(map[string]any)["permatrix"].(map[string]any)["revision"] != s.Svc.Policy().BundleRevision() {
			t.Errorf("bundles: %v", e["bundles"])
		}
		if e["timestamp"] == nil || e["req_id"] == nil || e["requested_by"] == nil || e["metrics"].(map[string]any)[decisionlog.TimerEval] == nil {
			t.Errorf("entry lacks OPA's fields: %v", e)
		}
		if e["custom"].(map[string]any)["store_revision"].(float64) < 1 {
			t.Errorf("store revision: %v", e["custom"])
		}
	}
	e := byID[checkID]
	if e == nil {
		t.Fatalf("the check %s was not shipped: %v", checkID, got)
	}
	ctxLogged := e["input"].(map[string]any)["context"].(map[string]any)
	if _, ok := ctxLogged["password"]; ok || ctxLogged["token"] != "***" || ctxLogged["keep"] != "yes" {
		t.Errorf("masking: context logged as %v", ctxLogged)
	}
	if !sameSet(e["erased"], "/input/context/password", "/result/reasons") || !sameSet(e["masked"], "/input/context/token") {
		t.Errorf("erased %v, masked %v", e["erased"], e["masked"])
	}
	if res := e["result"].(map[string]any); res["allow"] != true || res["reasons"] != nil {
		t.Errorf("result: %v", res)
	}
	items := batch.Body["results"].([]any)
	b0, b1 := byID[items[0].(map[string]any)["decision_id"].(string)], byID[items[1].(map[string]any)["decision_id"].(string)]
	if b0 == nil || b1 == nil || b0["batch_decision_id"] == nil || b0["batch_decision_id"] != b1["batch_decision_id"] {
		t.Errorf("batch items: %v %v", b0, b1)
	}
	if d := byID[data.Body["decision_id"].(string)]; d == nil || d["path"] != "permatrix/allow" || d["result"] != true {
		t.Errorf("data API entry: %v", d)
	}
	if fae := byID[fa.Body["decision_id"].(string)]; fae == nil || fae["path"] != decisionlog.CheckPath {
		t.Errorf("forward-auth entry: %v", fae)
	}
	if _, failed := dl.Uploads(); failed < 1 {
		t.Errorf("the refused upload was not counted")
	}
	if m := string(s.Do("GET", "/metrics", nil, false).Raw); !strings.Contains(m, `permatrix_decision_log_uploads_total{outcome="failed"} 1`) {
		t.Errorf("metrics: %s", grep(m, "decision_log"))
	}

	// The file: the same entries, read back typed.
	if err := dl.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil || len(entries) != want {
		t.Fatalf("file: %d entries, %v", len(entries), err)
	}
	for _, fe := range entries {
		if fe.DecisionID != checkID {
			continue
		}
		ch, err := fe.Check()
		if err != nil || ch.Subject != "ann" || ch.Context["password"] != nil || ch.Context["token"] != "***" {
			t.Errorf("file entry's check: %+v %v", ch, err)
		}
		d, err := fe.Decision()
		if err != nil || !d.Allow || fe.StoreRevision() < 1 || fe.BundleRevision() == "" || len(fe.Erased) != 2 {
			t.Errorf("file entry: %+v %+v %v", fe, d, err)
		}
	}
}

// TestDropsAreCounted: a mask policy that fails, a file that refuses
// writes and a full upload buffer each drop entries — counted by reason,
// in /metrics too.
func TestDropsAreCounted(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	dl := newLogger(t, `{"services": {"collector": {"url": "`+down.URL+`"}}}`,
		`{"service": "collector", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1, "buffer_size_limit_bytes": 300, "upload_size_limit_bytes": 200}}`,
		decisionlog.Options{File: "/dev/full"})
	s := harness.Start(t, harness.Options{Bundle: bundleWithMask(t), DecisionLog: dl})
	for i := range 20 {
		ctx := map[string]any{"n": i}
		if i == 0 {
			ctx["boom"] = true // the mask policy fails: the entry is dropped
		}
		if r := s.Check(map[string]any{"subject": "ann", "system": tm, "action": "edit_users", "context": ctx}); r.Status != 200 {
			t.Fatalf("check: %d %s", r.Status, r.Raw)
		}
	}
	var dropped map[string]uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		dropped = dl.Dropped()
		if dropped[decisionlog.DropWrite] == 19 && dropped[decisionlog.DropBufferFull]+dropped[decisionlog.DropEncoding] > 0 {
			break
		}
	}
	if dropped[decisionlog.DropMaskError] != 1 || dropped[decisionlog.DropWrite] != 19 || dropped[decisionlog.DropBufferFull]+dropped[decisionlog.DropEncoding] == 0 {
		t.Fatalf("dropped: %v", dropped)
	}
	m := string(s.Do("GET", "/metrics", nil, false).Raw)
	for _, want := range []string{
		`permatrix_decision_log_dropped_total{reason="mask_error"} 1`,
		`permatrix_decision_log_dropped_total{reason="write_error"} 19`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "decision_log"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = dl.Close(ctx)
}

func TestMaskListChecked(t *testing.T) {
	ctx := context.Background()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop(ctx)
	for _, tc := range []struct {
		mask   []string
		config string
		want   string
	}{
		{[]string{"/context/password"}, "", "under /input or /result"},
		{[]string{"password"}, "", "under /input or /result"},
		{[]string{"/input/a~2b"}, "", "~ must be followed by 0 or 1"},
		{[]string{"/input/a~"}, "", "~ must be followed by 0 or 1"},
		{[]string{"/input/a"}, `{"mask_decision": "/mask"}`, "inside a package"},
		{[]string{"/input/a"}, `{"mask_decision": "/system/log-x/mask"}`, "Rego name"},
		{nil, `{"plugin": "x"}`, "decision_logs.plugin"},
	} {
		o := decisionlog.Options{File: filepath.Join(t.TempDir(), "d.log"), Mask: tc.mask, Manager: mgr}
		if tc.config != "" {
			o.Config = []byte(tc.config)
		}
		if _, err := decisionlog.New(ctx, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %s: %v, want %q", tc.mask, tc.config, err, tc.want)
		}
	}
	escaped := decisionlog.Options{File: filepath.Join(t.TempDir(), "d.log"), Mask: []string{"/input/a~1b~0c"}, Manager: mgr}
	dl, err := decisionlog.New(ctx, escaped)
	if err != nil {
		t.Fatalf("a pointer with ~0 and ~1: %v", err)
	}
	_ = dl.Close(ctx)
}

// TestReadsOldLogs: lines of the log before OPA's schema still replay.
func TestReadsOldLogs(t *testing.T) {
	old := `{"decision_id":"d1","timestamp":"2025-01-01T00:00:00Z","path":"permatrix/decision","input":{"subject":"ann","system":"s","action":"a"},"result":{"allow":true,"revision":3,"reasons":[],"missing":[]},"store_revision":3,"bundle_revision":"rev1","duration_ns":42}

  	
{"decision_id":"d2","path":"permatrix/allow","result":false,"bundles":{"permatrix":{"revision":"rev2"}},"custom":{"store_revision":4},"timestamp":"2025-01-01T00:00:01Z"}
`
	entries, err := decisionlog.Read(strings.NewReader(old))
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	e := entries[0]
	d, err := e.Decision()
	if !e.IsCheck() || e.StoreRevision() != 3 || e.BundleRevision() != "rev1" || err != nil || !d.Allow || d.Revision != 3 {
		t.Errorf("old line: %+v %+v %v", e, d, err)
	}
	if entries[1].IsCheck() || entries[1].StoreRevision() != 4 || entries[1].BundleRevision() != "rev2" {
		t.Errorf("new line: %+v", entries[1])
	}
	if _, err := (&decisionlog.Entry{Result: map[string]any{"allow": "yes"}}).Decision(); err == nil {
		t.Error("a result without a boolean allow was read as a decision")
	}
	if _, err := decisionlog.Read(strings.NewReader("{\"decision_id\":\"x\"}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a broken line: %v", err)
	}
}

// A log line's keys are read as written, as OPA's reader and the policies
// read them: a case variant of a key ("Input", "PATH", "Allow") is another
// key, not the field, so no edited line decides another input or outcome
// than the one its exact keys say.
func TestReadsKeysExactly(t *testing.T) {
	lines := `{"decision_id":"d1","path":"permatrix/decision","input":{"subject":"ann","system":"s","action":"a"},"Input":{"subject":"mallory","system":"s","action":"a"},"result":{"allow":false,"Allow":true,"revision":3,"reasons":[],"missing":[]},"timestamp":"2025-01-01T00:00:00Z"}
{"decision_id":"d2","PATH":"permatrix/decision","Input":{"subject":"mallory","system":"s","action":"a"},"Result":{"allow":true},"timestamp":"2025-01-01T00:00:00Z"}
{"Decision_ID":"d3","path":"permatrix/decision","input":{"subject":"ann","system":"s","action":"a"},"result":{"allow":true},"Custom":{"store_revision":9},"timestamp":"2025-01-01T00:00:00Z"}
`
	entries, err := decisionlog.Read(strings.NewReader(lines))
	if err != nil || len(entries) != 3 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	c, err := entries[0].Check()
	if err != nil || c.Subject != "ann" {
		t.Errorf("line 1 checks %q (%v), want ann's input (\"input\"), not \"Input\"", c.Subject, err)
	}
	if d, err := entries[0].Decision(); err != nil || d.Allow {
		t.Errorf("line 1 decided %+v (%v), want allow false (\"allow\"), not \"Allow\"", d, err)
	}
	if entries[1].IsCheck() || entries[1].Path != "" || entries[1].Result != nil {
		t.Errorf("line 2 has no path, input or result, read %+v", entries[1])
	}
	if entries[2].DecisionID != "" || entries[2].StoreRevision() != 0 {
		t.Errorf("line 3 has no decision_id or custom, read %q and store revision %d", entries[2].DecisionID, entries[2].StoreRevision())
	}
}

func sameSet(v any, want ...string) bool {
	list, _ := v.([]any)
	if len(list) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, x := range list {
			found = found || x == w
		}
		if !found {
			return false
		}
	}
	return true
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkLogDecision is the cost a decision log adds to a check: OPA's
// plugin (event, drop and mask policies of the default bundle, none
// defined) and a JSON line written to /dev/null.
func BenchmarkLogDecision(b *testing.B) {
	ctx := context.Background()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Stop(ctx)
	dl, err := decisionlog.New(ctx, decisionlog.Options{File: os.DevNull, Manager: mgr, Mask: []string{"/input/context/password"}})
	if err != nil {
		b.Fatal(err)
	}
	defer dl.Close(ctx)
	engine := opa.NewEngine(nil)
	dl.Attach(engine)
	bundle, err := opa.ReadDefault()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := engine.Activate(ctx, bundle); err != nil {
		b.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users", Context: map[string]any{"password": "x"}}
	d := &permatrix.Decision{Allow: true, DecisionID: "d", Revision: 3, Reasons: []map[string]any{{"kind": "permission", "via": "user:ann"}}, Missing: []map[string]any{}}
	e := decisionlog.Entry{DecisionID: "d", Path: decisionlog.CheckPath, Input: check.Input(), Result: d, Timestamp: time.Now(),
		Bundles: map[string]decisionlog.BundleInfo{"permatrix": {Revision: "r"}}, Custom: &decisionlog.Custom{StoreRevision: 3},
		Metrics: map[string]any{decisionlog.TimerEval: 1000}}
	b.ReportAllocs()
	for b.Loop() {
		dl.LogDecision(ctx, e)
	}
}

// TestMaskFollowsBundleSwaps: the mask policy is the active bundle's — a
// swap to a bundle with one masks from then on, a swap back stops it.
func TestMaskFollowsBundleSwaps(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "d.jsonl")
	dl := newLogger(t, "", "", decisionlog.Options{File: file})
	db := store.NewMemory()
	engine := opa.NewEngine(db)
	dl.Attach(engine)
	svc := pdp.New(db, engine, nil, dl)
	plain, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	masking, err := opa.ReadBundle(ctx, bundleWithMask(t), opa.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users", Context: map[string]any{"token": "abc"}}
	var ids []string
	for _, b := range []*opa.Bundle{plain, masking, plain} {
		if _, err := svc.Activate(ctx, b); err != nil {
			t.Fatal(err)
		}
		d, err := svc.Check(ctx, check)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.DecisionID)
	}
	if err := dl.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil || len(entries) != 3 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for i, want := range []string{"abc", "***", "abc"} {
		ch, err := entries[i].Check()
		if err != nil || entries[i].DecisionID != ids[i] || ch.Context["token"] != want {
			t.Errorf("entry %d: token %v, want %q (%v)", i, ch.Context["token"], want, err)
		}
	}
}

// TestStalledFileDoesNotBlockChecks: a decision log whose writes block (a
// pipe nobody reads: a log shipper that hangs, stdout into a stuck
// process) must not hold up decisions. The file sink wrote under the lock
// every Log takes, so once the pipe and the buffer were full every check
// waited on the write, for good, and so did shutdown. Entries beyond what
// may wait are dropped, counted as write_error; Close gives up when its
// context ends, and says so.
func TestStalledFileDoesNotBlockChecks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "decisions.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// A reader that never reads: the writer's open succeeds, its writes
	// block once the pipe is full.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dl := newLogger(t, `{}`, "", decisionlog.Options{File: fifo})
	s := harness.Start(t, harness.Options{DecisionLog: dl})
	big := strings.Repeat("x", 4<<10)
	n := decisionlog.MaxPending/len(big) + 200 // more than may wait
	done := make(chan int, 1)
	go func() {
		for i := range n {
			if r := s.Check(map[string]any{"subject": "ann", "system": tm, "action": "edit_users", "context": map[string]any{"pad": big}}); r.Status != 200 {
				t.Errorf("check %d: %d %s", i, r.Status, r.Raw)
			}
		}
		done <- n
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d checks not answered within 30 s: the stalled decision log blocks them", n)
	}
	if d := dl.Dropped()[decisionlog.DropWrite]; d == 0 {
		t.Errorf("nothing counted dropped: %v", dl.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- dl.Close(ctx) }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Close lost the entries it could not write without saying so")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocks on the stalled write")
	}
}

// TestUploadBufferBounded: with a decision-log service and no buffer
// limit configured, the upload buffer is bounded all the same
// (DefaultBufferSizeLimit): while the service is down, entries beyond it
// are dropped and counted (buffer_full). OPA's default is no limit, so a
// collector down (or answering 503) long enough took serve's memory with
// it: 5000 decisions of 30 KB grew it from 54 MB to 860 MB, nothing
// dropped, nothing counted.
func TestUploadBufferBounded(t *testing.T) {
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	dl := newLogger(t, `{"services": {"collector": {"url": "`+down.URL+`"}}}`,
		`{"service": "collector", "reporting": {"min_delay_seconds": 60, "max_delay_seconds": 60, "upload_size_limit_bytes": 4194304}}`,
		decisionlog.Options{})
	defer dl.Close(ctx)
	engine := opa.NewEngine(nil)
	dl.Attach(engine)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Incompressible: what is buffered is gzipped.
	pad := make([]byte, 1<<20)
	if _, err := rand.Read(pad); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users", Context: map[string]any{"pad": base64.StdEncoding.EncodeToString(pad)}}
	e := decisionlog.Entry{DecisionID: "d", Path: decisionlog.CheckPath, Input: check.Input(), Result: &permatrix.Decision{Reasons: []map[string]any{}, Missing: []map[string]any{}},
		Timestamp: time.Now(), Bundles: map[string]decisionlog.BundleInfo{"permatrix": {Revision: "r"}}}
	n := int(decisionlog.DefaultBufferSizeLimit/(1<<20)) + 16 // each entry about 1 MiB gzipped
	for range n {
		dl.LogDecision(ctx, e)
	}
	if d := dl.Dropped(); d[decisionlog.DropBufferFull] == 0 {
		t.Fatalf("%d entries of 1 MiB buffered for a service that is down, none dropped: %v", n, d)
	}
}

// TestEndlessUploadAnswer: a collector whose answer to an upload never
// ends (a body dripping forever) holds up neither the next uploads nor
// Close. OPA's plugin drains an answer's body before it goes on: one such
// answer stopped the uploads for good, and serve's shutdown hung past
// --shutdown-timeout.
func TestEndlessUploadAnswer(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	posts := 0
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := w.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer collector.Close()
	dl := newLogger(t, `{"services": {"collector": {"url": "`+collector.URL+`"}}}`,
		`{"service": "collector", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}}`, decisionlog.Options{})
	engine := opa.NewEngine(nil)
	dl.Attach(engine)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users"}
	e := decisionlog.Entry{DecisionID: "d", Path: decisionlog.CheckPath, Input: check.Input(), Result: &permatrix.Decision{Reasons: []map[string]any{}, Missing: []map[string]any{}},
		Timestamp: time.Now(), Bundles: map[string]decisionlog.BundleInfo{"permatrix": {Revision: "r"}}}
	uploads := func() int { mu.Lock(); defer mu.Unlock(); return posts }
	for deadline := time.Now().Add(10 * time.Second); uploads() < 3 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		dl.LogDecision(ctx, e)
	}
	if n := uploads(); n < 3 {
		t.Fatalf("%d uploads in 10 s: an endless answer holds up the next ones", n)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() { _ = dl.Close(cctx); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on an endless answer")
	}
}

// TestRateLimitBoundsUploadBuffer: with max_decisions_per_second (which
// OPA takes instead of a byte limit: boundBuffer adds none) and the
// service down, the rate bounds what is buffered: of 2000 entries logged
// at once at 10 a second, all but about the limiter's burst are dropped
// and counted (rate_limit), none held beyond it.
func TestRateLimitBoundsUploadBuffer(t *testing.T) {
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	dl := newLogger(t, `{"services": {"collector": {"url": "`+down.URL+`"}}}`,
		`{"service": "collector", "reporting": {"min_delay_seconds": 60, "max_delay_seconds": 60, "max_decisions_per_second": 10}}`,
		decisionlog.Options{})
	defer dl.Close(ctx)
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users"}
	e := decisionlog.Entry{DecisionID: "d", Path: decisionlog.CheckPath, Input: check.Input(), Result: &permatrix.Decision{Reasons: []map[string]any{}, Missing: []map[string]any{}},
		Timestamp: time.Now(), Bundles: map[string]decisionlog.BundleInfo{"permatrix": {Revision: "r"}}}
	const n = 2000
	start := time.Now()
	for range n {
		dl.LogDecision(ctx, e)
	}
	// At most the burst (10) plus 10 a second since the start were let in.
	letIn := 10 + 10*int(time.Since(start).Seconds()+1)
	if d := dl.Dropped()[decisionlog.DropRateLimit]; d < uint64(n-letIn) {
		t.Fatalf("%d entries logged at once at 10 a second: %d dropped over the rate, want at least %d", n, d, n-letIn)
	}
}

// TestFileSinkReportsReady: the file sink is one of the manager's plugins
// (OPA's decision-log plugin writes through it), so OPA's status plugin
// reports its state to a control plane: OK once the file is open, not
// NOT_READY for ever.
func TestFileSinkReportsReady(t *testing.T) {
	ctx := context.Background()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop(ctx)
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dl, err := decisionlog.New(ctx, decisionlog.Options{File: filepath.Join(t.TempDir(), "d.log"), Manager: mgr})
	if err != nil {
		t.Fatal(err)
	}
	states := mgr.Plugins().PluginStatus()
	if len(states) == 0 {
		t.Fatal("no plugin registered")
	}
	for name, s := range states {
		if s == nil || s.State != "OK" {
			t.Errorf("plugin %s: %+v, want OK", name, s)
		}
	}
	// Closed, as OPA's plugins when they stop.
	if err := dl.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := mgr.Plugins().PluginStatus()["permatrix_decision_log_file"]; s == nil || s.State != "NOT_READY" {
		t.Errorf("after Close: %+v", s)
	}
}

// With distributed tracing, an entry names the request's trace and span
// (OPA's trace_id and span_id); without, neither.
func TestEntryNamesTheSpan(t *testing.T) {
	file := filepath.Join(t.TempDir(), "decisions.jsonl")
	l, err := decisionlog.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	l.LogDecision(traced, decisionlog.Entry{DecisionID: "traced", Path: decisionlog.CheckPath, Timestamp: time.Now()})
	l.LogDecision(context.Background(), decisionlog.Entry{DecisionID: "untraced", Path: decisionlog.CheckPath, Timestamp: time.Now()})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	if e := entries[0]; e.TraceID != tid.String() || e.SpanID != sid.String() {
		t.Errorf("traced: %q %q", e.TraceID, e.SpanID)
	}
	if e := entries[1]; e.TraceID != "" || e.SpanID != "" {
		t.Errorf("untraced: %q %q", e.TraceID, e.SpanID)
	}
}

// TestStatusReportHidesTheUploadURLsQuery: OPA's decision-log plugin hands
// its last upload's error to the status plugin, which reports it to the
// control plane. A failed connection's error names the URL, with its query
// (a presigned URL's signature, a token): the control plane was sent it.
// The report shows the query as redacted, as a bundle URL's is — whatever
// the partition_name the report is sent under: one with an escape or a
// trailing "/" (eu%2Fwest/) was not known for a report on its way out
// (OPA's client trims the "/" and the request's path is unescaped), and
// went unredacted.
func TestStatusReportHidesTheUploadURLsQuery(t *testing.T) {
	for _, status := range []string{`{"service": "cp"}`, `{"service": "cp", "partition_name": "eu%2Fwest/"}`, `{"service": "cp", "partition_name": "a b//"}`} {
		t.Run(status, func(t *testing.T) { statusReportHidesTheUploadURLsQuery(t, status) })
	}
}

func statusReportHidesTheUploadURLsQuery(t *testing.T, status string) {
	ctx := context.Background()
	// The collector takes each upload's connection and closes it
	// unanswered: the upload fails with net/http's error, which names the
	// URL.
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer collector.Close()
	var mu sync.Mutex
	var reports []string
	cp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		mu.Lock()
		reports = append(reports, body.String())
		mu.Unlock()
	}))
	defer cp.Close()
	// serve's log gets OPA's plugins' lines (the failed upload's, which
	// names its URL) at debug and above.
	var logged harness.LockedBuffer
	log := slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mgr, err := management.New(ctx, []byte(`{"services": {"collector": {"url": "`+collector.URL+`?sig=secret"}, "cp": {"url": "`+cp.URL+`"}}}`), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	if err := mgr.EnableStatus([]byte(status)); err != nil {
		t.Fatal(err)
	}
	dl, err := decisionlog.New(ctx, decisionlog.Options{Manager: mgr,
		Config: []byte(`{"service": "collector", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close(ctx) })
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	engine := opa.NewEngine(nil)
	dl.Attach(engine)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	check := permatrix.Check{Subject: "ann", System: tm, Action: "edit_users"}
	e := decisionlog.Entry{DecisionID: "d", Path: decisionlog.CheckPath, Input: check.Input(), Result: &permatrix.Decision{Reasons: []map[string]any{}, Missing: []map[string]any{}},
		Timestamp: time.Now(), Bundles: map[string]decisionlog.BundleInfo{"permatrix": {Revision: "r"}}}
	failed := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if strings.Contains(r, "decision_log_error") {
				return r, true
			}
		}
		return "", false
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, ok := failed(); ok {
			break
		}
		dl.LogDecision(ctx, e)
	}
	report, ok := failed()
	if !ok {
		t.Fatal("no status report of a failed upload in 15 s")
	}
	if strings.Contains(report, "secret") || !strings.Contains(report, "redacted") {
		t.Errorf("the report of a failed upload: %s; want the URL's query redacted", report)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reports {
		if strings.Contains(r, "secret") {
			t.Errorf("a report shows the upload URL's query: %s", r)
		}
	}
	// Nor does serve's log (OPA's plugin logged the failed upload's URL,
	// query and all).
	text := logged.String()
	if !strings.Contains(text, "log upload failed") || !strings.Contains(text, "?redacted") || strings.Contains(text, "secret") {
		t.Errorf("serve's log of the failed uploads: %s; want the upload URL with its query redacted", text)
	}
}
