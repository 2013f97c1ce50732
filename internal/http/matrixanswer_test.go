package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// The matrix endpoint needs no token, and Blue Prism's matrix is some 4 MB
// of JSON. The matrix is computed once per compiled bundle and system; its
// answer was encoded again on every request — ~100 ms of CPU and a 4 MB
// buffer each, for a request of a few dozen bytes: 16 clients asking it
// over and over took both CPUs (a check's latency went from 1 ms to
// ~100 ms) and the heap to gigabytes. The answer is now encoded once with
// the matrix (and once indented, for ?pretty), and each request writes
// those bytes.
func TestMatrixAnswerEncodedOnce(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{})
	base := serveOn(t, srv)
	get := func(path string) []byte {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q %v", path, res.StatusCode, res.Header.Get("Content-Type"), err)
		}
		return b
	}
	compact := get("/v1/matrix/blueprism") // computed and encoded
	pretty := get("/v1/matrix/blueprism?pretty")
	var want bytes.Buffer
	if err := json.Indent(&want, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(pretty), bytes.TrimSpace(want.Bytes())) {
		t.Error("?pretty is not the answer indented")
	}
	var m struct {
		System               string
		Cells                []any
		CandidateUploadLimit int64 `json:"candidate_upload_limit"`
	}
	if err := json.Unmarshal(compact, &m); err != nil || m.System != "blueprism" || len(m.Cells) == 0 || m.CandidateUploadLimit <= 0 {
		t.Fatalf("the answer: %v, system %q, %d cells, upload limit %d", err, m.System, len(m.Cells), m.CandidateUploadLimit)
	}

	const n = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		res, err := http.Get(base + "/v1/matrix/blueprism")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	took := time.Since(start) / n
	runtime.ReadMemStats(&after)
	each := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d-byte answer: %d bytes allocated and %v a request", len(compact), each, took)
	if each > uint64(len(compact))/8 {
		t.Errorf("a request for the %d-byte matrix allocated %d bytes: encoded again", len(compact), each)
	}
}
