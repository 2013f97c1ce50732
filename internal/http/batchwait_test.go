package http_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/test/harness"
)

// TestBatchWaitsForATokenOnce: a consistency token makes a request wait at
// most --consistency-timeout (docs/fleet.md: "at most
// --consistency-timeout each, and nothing more"). A batch is one request:
// its checks share that wait. Each check waiting the timeout in turn made
// one unauthenticated batch of 1000 checks hold its connection for 1000
// timeouts (17 minutes at the default).
func TestBatchWaitsForATokenOnce(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := &harness.LockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	const timeout = 200 * time.Millisecond
	svc.ConsistencyTimeout = timeout
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(permhttp.NewServer(svc, permhttp.Config{Logger: log}).Handler())
	defer srv.Close()

	check := `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`
	own := `{"subject":"ann","system":"celonis-task-mining","action":"edit_users","min_revision":77}`
	for _, tc := range []struct {
		name, body, header string
	}{
		{"the header's token", `{"checks":[` + strings.Repeat(check+",", 9) + check + `]}`, "99"},
		{"the items' own tokens", `{"checks":[` + strings.Repeat(own+",", 9) + own + `]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(logs.String(), "batch items failed")
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/check/batch", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set("X-Permatrix-Min-Revision", tc.header)
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Results []struct {
					Error *struct{ Code string } `json:"error"`
				} `json:"results"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %v", resp.StatusCode, err)
			}
			took := time.Since(start)
			if len(out.Results) != 10 {
				t.Fatalf("%d results, want 10", len(out.Results))
			}
			for i, r := range out.Results {
				if r.Error == nil || r.Error.Code != "unavailable" {
					t.Errorf("check %d: %+v, want unavailable (its token is not reached)", i, r.Error)
				}
			}
			if took < timeout || took > 5*timeout {
				t.Errorf("the batch took %s, want about the consistency timeout (%s) in all", took, timeout)
			}
			// Not a failure of the server's (the client chose the
			// token): no error line, and at most one warning for all
			// the unreached tokens of both batches.
			if n := strings.Count(logs.String(), "batch items failed") - before; n != 0 || strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("unreached tokens logged as the batch's failures:\n%s", logs.String())
			}
			if n := strings.Count(logs.String(), "consistency tokens not reached"); n != 1 {
				t.Errorf("%d warnings of unreached tokens, want 1:\n%s", n, logs.String())
			}
		})
	}
}
