package management_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/version"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/test/harness"
)

func newManager(t *testing.T, config string, log *slog.Logger) *management.Manager {
	t.Helper()
	var raw []byte
	if config != "" {
		raw = []byte(config)
	}
	m, err := management.New(context.Background(), raw, log)
	if err != nil {
		t.Fatalf("New(%s): %v", config, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Stop(ctx)
	})
	return m
}

// Every decision carries id and version; the id is new for each process
// (each manager), as `opa run` does; configured labels come on top.
func TestLabels(t *testing.T) {
	a, b := newManager(t, "", nil), newManager(t, "", nil)
	la, lb := a.Labels(), b.Labels()
	if _, err := uuid.Parse(la["id"]); err != nil {
		t.Fatalf("id label %q: %v", la["id"], err)
	}
	if la["id"] == lb["id"] {
		t.Fatalf("two managers share the id %s", la["id"])
	}
	if la["version"] != version.Version || len(la) != 2 {
		t.Fatalf("labels %v, want id and version %s", la, version.Version)
	}
	// YAML, as the configuration file is written.
	c := newManager(t, "labels:\n  region: eu-west\n  team: iam\n", nil)
	if l := c.Labels(); l["region"] != "eu-west" || l["team"] != "iam" || l["id"] == "" || l["version"] != version.Version {
		t.Fatalf("configured labels: %v", l)
	}
}

func TestBadConfig(t *testing.T) {
	for _, config := range []string{
		`{`,
		`{"services": 5}`,
		`{"labels": ["a"]}`,
		`{"persistence_directory": 5}`,
		`{"keys": {"k": {"algorithm": "nope", "key": "x"}}}`,
		`[1, 2]`,
	} {
		m, err := management.New(context.Background(), []byte(config), nil)
		if err == nil {
			m.Stop(context.Background())
			t.Errorf("New(%s) succeeded", config)
		}
	}
}

// A configured service is what OPA's plugins talk to: its URL, its
// credentials and headers reach the server.
func TestServiceReachesItsServer(t *testing.T) {
	type seen struct{ method, path, auth, tenant string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Tenant")}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	m := newManager(t, `{"services": {"acme": {"url": "`+srv.URL+`/api", "headers": {"X-Tenant": "t1"},
		"credentials": {"bearer": {"token": "s3cret"}}}}}`, nil)
	if s := m.Plugins().Services(); len(s) != 1 || s[0] != "acme" {
		t.Fatalf("services %v", s)
	}
	resp, err := m.Plugins().Client("acme").Do(context.Background(), "POST", "/logs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; s != (seen{"POST", "/api/logs", "Bearer s3cret", "t1"}) {
		t.Fatalf("the server saw %+v", s)
	}
}

func compile(t *testing.T, modules map[string]string) *ast.Compiler {
	t.Helper()
	c, err := ast.CompileModules(modules)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eval(t *testing.T, m *management.Manager, query string) (any, bool) {
	t.Helper()
	rs, err := rego.New(rego.Query(query), rego.Compiler(m.Plugins().GetCompiler()), rego.Store(m.Plugins().Store)).Eval(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if len(rs) == 0 {
		return nil, false
	}
	return rs[0].Expressions[0].Value, true
}

// SetCompiler makes the bundle's compiler and data what the plugins
// evaluate with, tells the plugins, and replaces (not merges) the data.
func TestSetCompiler(t *testing.T) {
	m := newManager(t, "", nil)
	var triggers int
	m.Plugins().RegisterCompilerTrigger(func(storage.Transaction) { triggers++ })

	c1 := compile(t, map[string]string{"p.rego": `package pmx

name := data.systems.demo.name

scopes := count(data.systems.demo.scope_types)
`})
	// Go values (a catalog struct, typed slices) are stored as plain JSON.
	data := map[string]any{"systems": map[string]any{"demo": &permatrix.System{Name: "Demo", ScopeTypes: []string{"service", "project"}}}}
	if err := m.SetCompiler(context.Background(), c1, data); err != nil {
		t.Fatal(err)
	}
	if m.Plugins().GetCompiler() != c1 || triggers != 1 {
		t.Fatalf("compiler installed: %v, triggers %d", m.Plugins().GetCompiler() == c1, triggers)
	}
	if v, ok := eval(t, m, "data.pmx.name"); !ok || v != "Demo" {
		t.Fatalf("data.pmx.name = %v, %v", v, ok)
	}
	if v, ok := eval(t, m, "data.pmx.scopes"); !ok || v != json.Number("2") {
		t.Fatalf("data.pmx.scopes = %#v, %v", v, ok)
	}

	// The next bundle: its data replaces the old.
	c2 := compile(t, map[string]string{"p.rego": "package pmx\n\nname := data.systems.demo.name\n"})
	if err := m.SetCompiler(context.Background(), c2, nil); err != nil {
		t.Fatal(err)
	}
	if m.Plugins().GetCompiler() != c2 || triggers != 2 {
		t.Fatalf("second compiler installed: %v, triggers %d", m.Plugins().GetCompiler() == c2, triggers)
	}
	if v, ok := eval(t, m, "data.pmx.name"); ok {
		t.Fatalf("data of the previous bundle still read: %v", v)
	}

	// Data that is not JSON is refused and changes nothing.
	if err := m.SetCompiler(context.Background(), c1, map[string]any{"f": func() {}}); err == nil {
		t.Fatal("SetCompiler with a func in the data succeeded")
	}
	if m.Plugins().GetCompiler() != c2 || triggers != 2 {
		t.Fatal("a refused SetCompiler changed the compiler")
	}
}

// OPA's plugins log through slog: their chatter at Info ("uploaded",
// "polled") is debug here, their console output (decision logs with
// console: true) and warnings and errors keep their level; plugin fields
// become attributes; the level is slog's.
func TestLogging(t *testing.T) {
	var buf harness.LockedBuffer
	m := newManager(t, "", slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l := m.Plugins().Logger().WithFields(map[string]any{"plugin": "bundle", "name": "authz"})
	l.Info("Bundle loaded and activated successfully. Etag updated to %s.", "abc")
	l.Debug("Sending request.")
	l.Warn("Bundle download slow: %d ms", 1500)
	l.Error("Bundle load failed: %v", io.ErrUnexpectedEOF)
	m.Plugins().ConsoleLogger().Info("Decision Log")
	if l.GetLevel() != logging.Info {
		t.Errorf("GetLevel() = %v, want Info (slog's level)", l.GetLevel())
	}
	l.SetLevel(logging.Debug) // a no-op: slog decides
	l.Debug("still hidden")

	var lines []map[string]any
	for line := range strings.Lines(buf.String()) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		lines = append(lines, v)
	}
	want := []struct{ level, msg string }{
		{"WARN", "Bundle download slow: 1500 ms"},
		{"ERROR", "Bundle load failed: unexpected EOF"},
		{"INFO", "Decision Log"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["level"] != w.level || lines[i]["msg"] != w.msg {
			t.Errorf("line %d: %v, want %s %q", i, lines[i], w.level, w.msg)
		}
	}
	if lines[1]["plugin"] != "bundle" || lines[1]["name"] != "authz" {
		t.Errorf("the plugin's fields are not attributes: %v", lines[1])
	}

	var debug harness.LockedBuffer
	d := newManager(t, "", slog.New(slog.NewJSONHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	d.Plugins().Logger().Info("Log upload queued.")
	if d.Plugins().Logger().GetLevel() != logging.Debug || !strings.Contains(debug.String(), `"level":"DEBUG","msg":"Log upload queued."`) {
		t.Errorf("at debug: %s", debug.String())
	}
}

// The decision-log plugin of OPA evaluates the mask policy of the compiler
// SetCompiler installed, and what it reports only by logging (a failing
// mask) reaches ObserveErrors, with the plugin's name and the unformatted
// message.
func TestMaskPolicyAndObservedErrors(t *testing.T) {
	var buf harness.LockedBuffer
	m := newManager(t, "", slog.New(slog.NewJSONHandler(&buf, nil)))
	type observed struct{ plugin, format string }
	var mu sync.Mutex
	var errs []observed
	m.ObserveErrors(func(plugin, format string) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, observed{plugin, format})
	})
	cfg, err := logs.NewConfigBuilder().WithBytes([]byte(`{"console": true}`)).WithServices(m.Plugins().Services()).Parse()
	if err != nil {
		t.Fatal(err)
	}
	p := logs.New(cfg, m.Plugins())
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(ctx)
	err = m.SetCompiler(ctx, compile(t, map[string]string{"log.rego": `package system.log

mask contains "/input/password"

mask contains "/input/x" if boom

boom := 1 if input.input.boom
boom := 2 if input.input.boom
`}), nil)
	if err != nil {
		t.Fatal(err)
	}
	logDecision := func(id string, input map[string]any) {
		var in any = input
		if err := p.Log(ctx, &server.Info{DecisionID: id, Path: "permatrix/decision", Input: &in, Timestamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	logDecision("d1", map[string]any{"user": "alice", "password": "hunter2"})
	out := buf.String()
	if !strings.Contains(out, `"decision_id":"d1"`) || !strings.Contains(out, "alice") || strings.Contains(out, "hunter2") {
		t.Fatalf("the mask policy did not apply:\n%s", out)
	}
	logDecision("d2", map[string]any{"boom": true})
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || errs[0] != (observed{logs.Name, "Log event masking failed: %v."}) {
		t.Fatalf("observed %+v", errs)
	}
	if strings.Contains(buf.String(), `"decision_id":"d2"`) {
		t.Fatal("the entry whose mask failed was logged")
	}
}

// A plugin's warning or error that repeats reaches the log once, then at
// most once every RepeatEvery with how many were left out; observers still
// hear each. OPA's decision-log plugin logs an error for every decision
// over max_decisions_per_second: 2000 decisions over the rate wrote 2000
// lines.
func TestRepeatedErrorsLoggedOnceInAWhile(t *testing.T) {
	var buf harness.LockedBuffer
	m := newManager(t, "", slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	management.SetClock(m, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	observed := 0
	m.ObserveErrors(func(string, string) { mu.Lock(); observed++; mu.Unlock() })
	l := m.Plugins().Logger().WithFields(map[string]any{"plugin": "decision_logs"})
	const shed = "Decision log dropped as rate limit exceeded. Reduce reporting interval or increase rate limit."
	for range 1000 {
		l.Error(shed)
	}
	l.Error("Log upload failed: %v", io.ErrUnexpectedEOF)                           // another message: its own first time
	m.Plugins().Logger().WithFields(map[string]any{"plugin": "bundle"}).Error(shed) // another plugin
	mu.Lock()
	now = now.Add(management.RepeatEvery)
	mu.Unlock()
	l.Error(shed)
	l.Error(shed)

	var lines []map[string]any
	for line := range strings.Lines(buf.String()) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		lines = append(lines, v)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4 (first, another message, another plugin, one after %s):\n%s", len(lines), management.RepeatEvery, buf.String())
	}
	if lines[0]["msg"] != shed || lines[0]["repeated"] != nil || lines[2]["plugin"] != "bundle" {
		t.Errorf("first lines: %v, %v", lines[0], lines[2])
	}
	if lines[3]["msg"] != shed || lines[3]["repeated"] != float64(999) {
		t.Errorf("after %s: %v, want repeated 999", management.RepeatEvery, lines[3])
	}
	mu.Lock()
	defer mu.Unlock()
	if observed != 1004 {
		t.Errorf("observers heard %d errors, want 1004", observed)
	}
}

// Distinct warnings or errors of one plugin written with one format (OPA's
// discovery logs each configuration warning as Warn("%s", w), its status
// and decision-log plugins each upload error as Error("%v.", err)) are
// not repeats of each other: each reaches the log. Only the same message
// again is left out within RepeatEvery.
func TestDistinctMessagesOfOneFormatLogged(t *testing.T) {
	var buf harness.LockedBuffer
	m := newManager(t, "", slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	management.SetClock(m, func() time.Time { return now })
	l := m.Plugins().Logger().WithFields(map[string]any{"plugin": "discovery"})
	l.Warn("%s", "unknown option services.acme.credentials.bearer.tokn")
	l.Warn("%s", "unknown option decision_logs.reporting.max_delay")
	l.Warn("%s", "unknown option decision_logs.reporting.max_delay") // a repeat
	var msgs []string
	for line := range strings.Lines(buf.String()) {
		var v struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		msgs = append(msgs, v.Msg)
	}
	want := []string{"unknown option services.acme.credentials.bearer.tokn", "unknown option decision_logs.reporting.max_delay"}
	if !slices.Equal(msgs, want) {
		t.Fatalf("logged %q, want %q", msgs, want)
	}
	// The messages remembered are bounded, whatever the plugins write:
	// each distinct one still reaches the log.
	for i := range management.MaxRepeats + 10 {
		l.Error("%v.", fmt.Errorf("upload %d failed", i))
	}
	if n := management.Remembered(m); n > management.MaxRepeats {
		t.Errorf("%d messages remembered, over the bound %d", n, management.MaxRepeats)
	}
	if n := strings.Count(buf.String(), `"msg":"upload `); n != management.MaxRepeats+10 {
		t.Errorf("%d lines for %d distinct errors", n, management.MaxRepeats+10)
	}
	// Once their time has passed, the old ones make room.
	now = now.Add(management.RepeatEvery)
	l.Error("%v.", errors.New("one more"))
	l.Error("%v.", errors.New("one more"))
	if n := management.Remembered(m); n != 1 {
		t.Errorf("%d messages remembered after %s, want the last one only", n, management.RepeatEvery)
	}
	if n := strings.Count(buf.String(), "one more"); n != 1 {
		t.Errorf("the new message logged %d times, want once (its repeat left out)", n)
	}
}

// Repeats left out and never followed by another line (the errors
// stopped within RepeatEvery) are told when the manager stops, once, with
// their count: they were told only if the message came again.
func TestRepeatsLeftOutToldOnStop(t *testing.T) {
	var buf harness.LockedBuffer
	m, err := management.New(context.Background(), nil, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	l := m.Plugins().Logger().WithFields(map[string]any{"plugin": "decision_logs"})
	const shed = "Decision log dropped as rate limit exceeded. Reduce reporting interval or increase rate limit."
	for range 50 {
		l.Error(shed)
	}
	l.Warn("once only")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Stop(ctx)
	m.Stop(ctx) // a second stop tells nothing again
	var told []map[string]any
	for line := range strings.Lines(buf.String()) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if v["msg"] == shed {
			told = append(told, v)
		}
	}
	if len(told) != 2 || told[0]["repeated"] != nil || told[1]["repeated"] != float64(49) || told[1]["level"] != "ERROR" || told[1]["plugin"] != "decision_logs" {
		t.Fatalf("the repeated error's lines: %v\n%s", told, buf.String())
	}
	if n := strings.Count(buf.String(), "once only"); n != 1 {
		t.Errorf("a message never repeated: %d lines", n)
	}
}
