package http_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestCandidateUploadMemoryBounded: an uploaded candidate bundle (POST
// /v1/matrix/{system}/diff, POST /v1/replay) is parsed and compiled, at a
// cost of ~300 bytes of memory per byte of dense Rego (a module of one
// array of {}) and ~40 per byte of dense JSON, and its unpacked bound was
// 64 MiB: a 4 KB upload of 3.9 MB of such Rego took serve's RSS up by
// 1.3 GB and ran 17 s (past the write timeout: no answer), 61 KB of 63 MB
// of JSON to 2.5 GB. The repository's bundle unpacks to ~190 KB; a
// candidate unpacks to at most 1 MiB, refused (422) before anything is
// parsed past the bound.
func TestCandidateUploadMemoryBounded(t *testing.T) {
	// A decision log file (none written yet), so that the replay reads
	// its upload.
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, DecisionLogFile: filepath.Join(t.TempDir(), "decisions.log")}))
	dense := func(name string, head, item, tail string, n int) []byte {
		var src bytes.Buffer
		src.WriteString(head)
		for i := range n {
			if i > 0 {
				src.WriteByte(',')
			}
			src.WriteString(item)
		}
		src.WriteString(tail)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(src.Len())}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(src.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, up := range []struct {
		name string
		body []byte
	}{
		{"3.9 MB of Rego", dense("x/p.rego", "package x\n\np := [", "{}", "]\n", 1_300_000)},
		{"12 MB of JSON", dense("x/data.json", `{"a":[`, "{}", "]}", 4_000_000)},
	} {
		for _, path := range []string{"/v1/matrix/blueprism/diff", "/v1/replay"} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			status, b := requestBody(t, http.MethodPost, base+path, docTestToken, bytes.NewReader(up.body))
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s (%d bytes sent) to %s: %d, %d MiB allocated", up.name, len(up.body), path, status, alloc>>20)
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(b), "unpacks to more than") {
				t.Errorf("%s to %s: %d %s, want 422, over the unpacked bound", up.name, path, status, b)
			}
			if alloc > 32<<20 {
				t.Errorf("%s to %s: %d MiB allocated, want under 32", up.name, path, alloc>>20)
			}
		}
	}
}
