package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestPermissionListingsBounded: GET /v1/subjects/{user}/permissions needs
// no token and decides one check per action of the catalog (some 160
// decisions for one request of 30 bytes): a client asking it again and
// again, for users it makes up (no decision cached), had the server decide
// 160 times what it asked, on every core. The listings computed at once
// are bounded (MaxPermissionListings): one past the bound is answered 503
// at once, with Retry-After, deciding nothing, and counted; checks are
// served meanwhile, and a listing is served again once one has ended.
func TestPermissionListingsBounded(t *testing.T) {
	const bound = 2
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxPermissionListings: bound})
	// The first listings wait in their place until released; any other
	// goes on (were one computed past the bound, it would be told).
	entered, release := make(chan struct{}, bound+1), make(chan struct{})
	var mu sync.Mutex
	began := 0
	permhttp.SetTestHookListing(t, func() {
		mu.Lock()
		began++
		first := began <= bound
		mu.Unlock()
		entered <- struct{}{}
		if first {
			<-release
		}
	})
	base := serveOn(t, srv)
	var wg sync.WaitGroup
	held := make([]int, bound)
	for i := range bound {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i], _ = request(t, http.MethodGet, base+"/v1/subjects/held"+string(rune('a'+i))+"/permissions", "")
		}()
	}
	for range bound {
		<-entered
	}

	res, body := exchangeBody(t, http.MethodGet, base+"/v1/subjects/another/permissions", "", nil)
	var env struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &env)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" || env.Error.Code != "unavailable" ||
		!strings.Contains(env.Error.Message, "listings") {
		t.Errorf("a listing past the bound: %d Retry-After %q %s, want 503, Retry-After 1, unavailable", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	if len(entered) != 0 {
		t.Error("the listing past the bound was computed")
	}
	// Bad input is still told as such.
	if status, body := request(t, http.MethodGet, base+"/v1/subjects/another/permissions?systems=blueprism", ""); status != http.StatusBadRequest {
		t.Errorf("a misspelt parameter at the bound: %d %s, want 400", status, body)
	}
	// A check is served meanwhile.
	if status, body := requestBody(t, http.MethodPost, base+"/v1/check", "",
		strings.NewReader(`{"subject":"alice","system":"blueprism","action":"audit_alerts"}`)); status != http.StatusOK {
		t.Errorf("a check while the listings are at their bound: %d %s", status, body)
	}
	if status, metrics := request(t, http.MethodGet, base+"/metrics", docTestToken); status != http.StatusOK ||
		!strings.Contains(string(metrics), "permatrix_permission_listings_refused_total 1\n") {
		t.Errorf("the refusal is not counted in /metrics: %d\n%s", status, grepLines(string(metrics), "listings"))
	}

	// A listing asked while the places are taken waits for one (a page
	// asking for a few at once is not refused): freed while it waits, it
	// is computed.
	waited := make(chan int, 1)
	go func() {
		status, _ := request(t, http.MethodGet, base+"/v1/subjects/waiting/permissions", "")
		waited <- status
	}()
	for permhttp.ListingsWaiting(srv) == 0 {
		runtime.Gosched()
	}
	close(release)
	if status := <-waited; status != http.StatusOK {
		t.Errorf("a listing that waited for a place: %d, want 200", status)
	}
	wg.Wait()
	for i, status := range held {
		if status != http.StatusOK {
			t.Errorf("held listing %d: %d", i, status)
		}
	}
	if status, body := request(t, http.MethodGet, base+"/v1/subjects/another/permissions", ""); status != http.StatusOK {
		t.Errorf("a listing after the bound freed: %d %s", status, body)
	}
}

// grepLines are the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestListingWaitingForItsTokenHoldsNoPlace: a listing with a consistency
// token (min_revision) not yet applied waits for it, up to
// --consistency-timeout; it took its place first, and held it while it
// waited, deciding nothing: a client sending a listing with a token from
// the future, once a second, kept every listing refused. The place is
// taken once the token is reached.
func TestListingWaitingForItsTokenHoldsNoPlace(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	svc.ConsistencyTimeout = time.Minute // a guard only: the token is reached below
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	srv := permhttp.NewServer(svc, permhttp.Config{AdminToken: docTestToken, MaxPermissionListings: 1, Logger: log})
	base := serveOn(t, srv)

	var first struct{ Revision uint64 }
	status, body := request(t, http.MethodGet, base+"/v1/subjects/ann/permissions", "")
	if err := json.Unmarshal(body, &first); status != http.StatusOK || err != nil {
		t.Fatalf("a listing: %d %s", status, body)
	}
	waiting := make(chan int, 1)
	go func() {
		status, _ := request(t, http.MethodGet, fmt.Sprintf("%s/v1/subjects/ann/permissions?min_revision=%d", base, first.Revision+1), "")
		waiting <- status
	}()
	// The listing is in the handler, waiting for its token.
	for deadline := time.Now().Add(30 * time.Second); gauge(t, srv.Metrics().Registry, "permatrix_requests_in_flight", "api") < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listing with a token never reached the server")
		}
	}
	if status, body := request(t, http.MethodGet, base+"/v1/subjects/bob/permissions", ""); status != http.StatusOK {
		t.Errorf("a listing while another waits for its token: %d %s", status, body)
	}
	// The write that reaches the token: the waiting listing is answered.
	if status, body := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken, strings.NewReader(
		`{"subject":"user:ann","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`)); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("the write: %d %s", status, body)
	}
	if status := <-waiting; status != http.StatusOK {
		t.Errorf("the listing whose token was reached: %d", status)
	}
}
