package http_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// A cell's explanation (GET /v1/matrix/{system}/explain) needs no token and
// is a traced decision: ~10 ms of CPU and ~1.3 MB allocated for a request
// of a hundred bytes, as costly as a permission listing, and was bounded
// by nothing but the requests in flight: 16 clients asking explanations
// over and over held a check's latency at 200–470 ms on two CPUs (1–5 ms
// with as many asking listings, which are bounded). Explanations now take
// their place among the permission listings' (half the CPUs): one past
// them waits up to a second, then is answered 503 with Retry-After,
// counted; a check is served meanwhile.
func TestCellExplanationsBounded(t *testing.T) {
	var logged syncBuffer
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxPermissionListings: 1,
		Logger: slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	entered, release := make(chan struct{}, 1), make(chan struct{})
	permhttp.SetTestHookListing(t, func() {
		entered <- struct{}{}
		<-release
	})
	base := serveOn(t, srv)
	held := make(chan int, 1)
	go func() {
		status, _ := request(t, http.MethodGet, base+"/v1/subjects/held/permissions", "")
		held <- status
	}()
	<-entered // the one place is the listing's

	explain := base + "/v1/matrix/uipath-orchestrator/explain?holder=ml_packages_edit&action=ml_logs_view&scope=service"
	res, body := exchangeBody(t, http.MethodGet, explain, "", nil)
	var env struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &env)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" || env.Error.Code != "unavailable" ||
		!strings.Contains(env.Error.Message, "explanations") {
		t.Errorf("an explanation with every place taken: %d Retry-After %q %s, want 503, Retry-After 1, unavailable", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	// Bad input is told as such, and a check is served meanwhile.
	if status, body := request(t, http.MethodGet, base+"/v1/matrix/uipath-orchestrator/explain?holder=x&action=y&scope=service&extra=1", ""); status != http.StatusBadRequest {
		t.Errorf("an explanation with an unknown parameter at the bound: %d %s, want 400", status, body)
	}
	if status, body := requestBody(t, http.MethodPost, base+"/v1/check", "",
		strings.NewReader(`{"subject":"alice","system":"blueprism","action":"audit_alerts"}`)); status != http.StatusOK {
		t.Errorf("a check while the places are taken: %d %s", status, body)
	}
	if status, metrics := request(t, http.MethodGet, base+"/metrics", docTestToken); status != http.StatusOK ||
		!strings.Contains(string(metrics), "permatrix_cell_explanations_refused_total 1\n") {
		t.Errorf("the refusal is not counted in /metrics: %d\n%s", status, grepLines(string(metrics), "explanations"))
	}
	// Refused at a bound, as a listing past its bound is: not logged (a
	// flood of refusals would be a flood of log lines).
	if status, _ := request(t, http.MethodGet, base+"/v1/subjects/another/permissions", ""); status != http.StatusServiceUnavailable {
		t.Errorf("a listing with every place taken: %d, want 503", status)
	}
	if s := logged.String(); s != "" {
		t.Errorf("refusals at the bound logged:\n%s", s)
	}
	close(release)
	if status := <-held; status != http.StatusOK {
		t.Errorf("the held listing: %d", status)
	}
	if status, body := request(t, http.MethodGet, explain, ""); status != http.StatusOK {
		t.Errorf("an explanation once the place is free: %d %s", status, body)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
