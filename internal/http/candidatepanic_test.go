package http_test

import (
	"bytes"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// The one place for compiling a candidate bundle is given back however
// the upload that took it ends — a panic between taking it and reading the
// bundle included (the recoverer answers 500 and the server serves on):
// the place was given back only on return, so one panic there held it for
// good, and every upload after it waited its whole request, then was 503.
func TestCandidatePlaceGivenBackAfterAPanic(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, RequestTimeout: 2 * time.Second,
		DecisionLogFile: filepath.Join(t.TempDir(), "decisions.log")})
	same := candidate(t, nil)
	var panicked atomic.Bool
	permhttp.SetTestHookCandidate(t, func() {
		if panicked.CompareAndSwap(false, true) {
			panic("while the candidate is read")
		}
	})
	base := serveOn(t, srv)
	status, body := requestBody(t, http.MethodPost, base+"/v1/matrix/uipath-task-mining-suite/diff", docTestToken, bytes.NewReader(same))
	if status != http.StatusInternalServerError || !panicked.Load() {
		t.Fatalf("the upload that panicked: %d %s, want 500", status, body)
	}
	for _, path := range []string{"/v1/matrix/uipath-task-mining-suite/diff", "/v1/replay"} {
		start := time.Now()
		status, body := requestBody(t, http.MethodPost, base+path, docTestToken, bytes.NewReader(same))
		if status != http.StatusOK {
			t.Errorf("%s after an upload panicked: %d after %v %s, want 200", path, status, time.Since(start).Round(time.Millisecond), body)
		}
	}
}
