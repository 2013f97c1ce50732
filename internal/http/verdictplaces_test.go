package http_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// The write verdict (data.permatrix.admin.verdict) is a policy entrypoint
// anyone may evaluate through the Data API, and judging a membership
// judges every holding of the group: with a group of 20,000 assignments,
// one tokenless request of a hundred bytes took 2–3 s of CPU, allocated
// 560 MB and answered 9 MB; eight at once took serve from 1.5 to 2.8 GB.
// Without the admin token such an evaluation now takes a place among the
// permission listings' (half the CPUs): past them it waits up to a
// second, then is answered 503 with Retry-After, counted. Checks through
// the Data API, and the operator's evaluations, take none.
func TestOpenVerdictsBounded(t *testing.T) {
	var logged syncBuffer
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, MaxPermissionListings: 1, DefaultDecision: "/permatrix/admin/verdict",
		Logger: slogTo(&logged)})
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

	verdict := `{"op":"add_member","actor":"y","membership":{"group":"g","user":"x"}}`
	for _, tc := range []struct{ path, body string }{
		{"/v1/data/permatrix/admin/verdict", `{"input":` + verdict + `}`},
		{"/v1/data/permatrix/admin/verdict/forbidden", `{"input":` + verdict + `}`},
		{"/v0/data/permatrix/admin/verdict", verdict},
		{"/", verdict},
	} {
		res, body := exchangeBody(t, http.MethodPost, base+tc.path, "", strings.NewReader(tc.body))
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "write verdicts") {
			t.Errorf("POST %s without the token, every place taken: %d Retry-After %q %s, want 503 with Retry-After 1",
				tc.path, res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		if status, body := requestBody(t, http.MethodPost, base+tc.path, docTestToken, strings.NewReader(tc.body)); status != http.StatusOK {
			t.Errorf("POST %s with the token: %d %s, want 200 (the operator's evaluations take no place)", tc.path, status, body)
		}
	}
	// A check through the Data API takes no place.
	if status, body := requestBody(t, http.MethodPost, base+"/v1/data/permatrix/allow", "",
		strings.NewReader(`{"input":{"subject":"alice","system":"blueprism","action":"audit_alerts"}}`)); status != http.StatusOK {
		t.Errorf("a check through the Data API while the places are taken: %d %s", status, body)
	}
	if status, metrics := request(t, http.MethodGet, base+"/metrics", docTestToken); status != http.StatusOK ||
		!strings.Contains(string(metrics), "permatrix_open_verdicts_refused_total 4\n") {
		t.Errorf("the refusals are not counted in /metrics: %d\n%s", status, grepLines(string(metrics), "verdicts"))
	}
	if s := logged.String(); strings.Contains(s, `"level":"ERROR"`) {
		t.Errorf("refusals at the bound logged:\n%s", s)
	}
	close(release)
	if status := <-held; status != http.StatusOK {
		t.Errorf("the held listing: %d", status)
	}
	if status, body := requestBody(t, http.MethodPost, base+"/v1/data/permatrix/admin/verdict", "", strings.NewReader(`{"input":`+verdict+`}`)); status != http.StatusOK {
		t.Errorf("a verdict once the place is free: %d %s", status, body)
	}
}

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
