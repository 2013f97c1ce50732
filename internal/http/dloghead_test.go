package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/decisionlog"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// With decision_logs.request_context.http.headers naming a header (the
// configuration's example names X-Request-Id, which every client chooses),
// each decision's entry holds that header's values, and a batch's
// thousand entries each hold the request's: one tokenless request of
// 78 KB of body and a 60 KB header wrote 61 MB to the decision log. A
// logged header is now held to 1 KiB an entry (its values past it cut,
// saying so), so a batch writes about its thousand decisions, and a
// header within the bound is logged as it came.
func TestLoggedHeadersBounded(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	logFile := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.New(ctx, decisionlog.Options{File: logFile, Manager: mgr,
		Config: []byte(`{"request_context": {"http": {"headers": ["X-Request-Id", "X-Trace"]}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	engine := opa.NewEngine(db)
	w.Attach(engine)
	svc := pdp.New(db, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), w)
	b, _ := opa.ReadDefault()
	if _, err := svc.Activate(ctx, b); err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, permhttp.NewServer(svc, permhttp.Config{DecisionLog: w}))

	var checks []map[string]any
	for i := range 1000 {
		checks = append(checks, map[string]any{"subject": fmt.Sprintf("u%d", i), "system": "celonis-task-mining", "action": "edit_users"})
	}
	body, _ := json.Marshal(map[string]any{"checks": checks})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/check/batch", bytes.NewReader(body))
	req.Header.Set("X-Request-Id", strings.Repeat("r", 60_000))
	req.Header.Set("X-Trace", "small")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("batch: %d", res.StatusCode)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	t.Logf("a batch of %d bytes and a 60 KB header: %d entries, %d bytes logged", len(body), len(lines), len(raw))
	if len(lines) != 1000 {
		t.Fatalf("%d entries, want 1000", len(lines))
	}
	if len(raw) > 4<<20 {
		t.Errorf("a batch wrote %d bytes to the decision log", len(raw))
	}
	var e struct {
		RequestContext struct {
			HTTP struct{ Headers map[string][]string } `json:"http"`
		} `json:"request_context"`
	}
	if err := json.Unmarshal(lines[0], &e); err != nil {
		t.Fatal(err)
	}
	h := e.RequestContext.HTTP.Headers
	if got := h["X-Trace"]; len(got) != 1 || got[0] != "small" {
		t.Errorf("a header within the bound logged as %q, want [small]", got)
	}
	if got := h["X-Request-Id"]; len(got) != 1 || !strings.HasPrefix(got[0], "rrrr") || len(got[0]) > 1100 || !strings.Contains(got[0], "60000 bytes") {
		t.Errorf("the 60 KB header logged as %d values: %d bytes, ending %q", len(got), len(strings.Join(got, "")), got[len(got)-1][max(0, len(got[len(got)-1])-40):])
	}
}
