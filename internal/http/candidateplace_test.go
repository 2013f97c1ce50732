package http_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestCandidateUploadsOneAtATime: an uploaded candidate bundle costs up to
// ~300 MiB to compile at its bound, so uploads at once would add up. One is
// compiled at a time, by either endpoint: another waits for it, its body
// unread, as long as its request may last — compiled once the place is
// free, or answered 503 with Retry-After (counted) if it never is.
func TestCandidateUploadsOneAtATime(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, RequestTimeout: time.Second,
		DecisionLogFile: filepath.Join(t.TempDir(), "decisions.log")})
	same := candidate(t, nil)
	var mu sync.Mutex
	inside, most, compiled := 0, 0, 0
	permhttp.SetTestHookCandidate(t, func() {
		mu.Lock()
		inside++
		compiled++
		most = max(most, inside)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // long enough for the others to overlap, were they let in
		mu.Lock()
		inside--
		mu.Unlock()
	})
	base := serveOn(t, srv)
	post := func(path string) (int, []byte) {
		return requestBody(t, http.MethodPost, base+path, docTestToken, bytes.NewReader(same))
	}

	// The place held for longer than a request lasts: refused, nothing compiled.
	release := permhttp.HoldCandidatePlace(srv)
	res, body := exchangeBody(t, http.MethodPost, base+"/v1/replay", docTestToken, bytes.NewReader(same))
	var env struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &env)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || env.Error.Code != "unavailable" ||
		!strings.Contains(env.Error.Message, "one uploaded candidate bundle at a time") {
		t.Errorf("an upload while another is compiled, for the whole request: %d Retry-After %q %s, want 503 with Retry-After",
			res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	if compiled != 0 {
		t.Error("an upload past the bound took a place")
	}

	// Freed while one waits: the waiting one is compiled.
	waited := make(chan int, 1)
	go func() {
		status, _ := post("/v1/matrix/uipath-task-mining-suite/diff")
		waited <- status
	}()
	for deadline := time.Now().Add(5 * time.Second); permhttp.CandidatesWaiting(srv) == 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("no upload waits for the place held")
		}
	}
	release()
	if status := <-waited; status != http.StatusOK {
		t.Errorf("an upload that waited for the place: %d, want 200", status)
	}
	if status, metrics := request(t, http.MethodGet, base+"/metrics", docTestToken); status != http.StatusOK ||
		!strings.Contains(string(metrics), "permatrix_candidate_uploads_refused_total 1\n") {
		t.Errorf("the refusal is not counted in /metrics: %d\n%s", status, grepLines(string(metrics), "candidate"))
	}

	// Uploads at once, to both endpoints, a bad one among them: each is
	// answered, one compiled at a time, and the bad one gives its place back.
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i {
			case 0:
				statuses[i], _ = requestBody(t, http.MethodPost, base+"/v1/replay", docTestToken, strings.NewReader("hello"))
			case 1:
				statuses[i], _ = post("/v1/replay")
			default:
				statuses[i], _ = post("/v1/matrix/uipath-task-mining-suite/diff")
			}
		}()
	}
	wg.Wait()
	if want := []int{http.StatusUnprocessableEntity, 200, 200, 200}; !slices.Equal(statuses, want) {
		t.Errorf("uploads at once: %v, want %v", statuses, want)
	}
	if most != 1 || compiled != 5 {
		t.Errorf("%d candidates taken in at once (want 1), %d in all (want 5)", most, compiled)
	}
}
