package http_test

import (
	"context"
	"log/slog"
	"net/http"
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

// TestUnreachedTokenNotLoggedAsError: X-Permatrix-Min-Revision reaches
// forward-auth from the end user's request (docs/fleet.md: "set by the
// proxy, or passed on from the client's request"), so a client chooses
// it. A token the store has not reached is that client's 503, not a fault
// of the server: it is not logged at ERROR (two lines each, which any
// client behind the proxy could repeat at will), and the warning that
// tokens go unreached is one line for many such answers.
func TestUnreachedTokenNotLoggedAsError(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	var logs harness.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	svc.ConsistencyTimeout = 10 * time.Millisecond
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, permhttp.NewServer(svc, permhttp.Config{Logger: log}))
	for i := 0; i < 20; i++ {
		for _, path := range []string{"/v1/forward-auth", "/v1/forward-auth/projects/p1"} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			for k, v := range map[string]string{"X-Forwarded-User": "ann", "X-Permatrix-System": "celonis-task-mining",
				"X-Permatrix-Action": "edit_users", "X-Permatrix-Min-Revision": "999999"} {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("%s with a token ahead of the store: %d, want 503", path, res.StatusCode)
			}
		}
	}
	l := logs.String()
	if strings.Contains(l, "level=ERROR") {
		t.Errorf("an unreached token logged at ERROR:\n%s", l)
	}
	if n := strings.Count(l, "consistency tokens not reached"); n != 1 {
		t.Errorf("%d warnings for 40 unreached tokens, want 1:\n%s", n, l)
	}
}
