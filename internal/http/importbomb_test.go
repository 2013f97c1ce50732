package http_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// importBody POSTs body to /v1/import?query (gzip-compressed with zip)
// and returns the status and the answer's message, if any.
func importBody(t *testing.T, base, query string, body []byte, zip bool) (int, string) {
	t.Helper()
	if zip {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		body = b.Bytes()
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/import"+query, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+docTestToken)
	if zip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

// TestImportBlankRunsBounded: a blank line costs the import a read and
// nothing else, and gzip makes a GiB of them from a MB: an import of
// 1,073,741,824 blank lines ran ~150 s of CPU, long after its client
// gave up. NDJSON writers put no runs of blank lines; a run of more than
// 1,000 is refused at its line.
func TestImportBlankRunsBounded(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	blanks := func(n int) string { return strings.Repeat("\n", n/2) + strings.Repeat(" \t\r\n", n-n/2) }
	if status, raw := importBody(t, base, "", []byte(pacedLine(1)+blanks(1000)+pacedLine(2)), false); status != 200 {
		t.Fatalf("1,000 blank lines in a row: %d %s", status, raw)
	}
	status, raw := importBody(t, base, "", []byte(pacedLine(3)+blanks(1001)+pacedLine(4)), false)
	if want := "line 1002: more than 1000 blank lines in a row"; status != 400 || !strings.Contains(raw, want) {
		t.Fatalf("1,001 blank lines in a row: %d %s, want 400 %q", status, raw, want)
	}
	// A GiB of them in a MB: refused at the same line.
	status, raw = importBody(t, base, "?chunk=1", []byte(pacedLine(5)+blanks(64<<20)), true)
	if want := "line 1002: more than 1000 blank lines in a row"; status != 400 || !strings.Contains(raw, want) {
		t.Fatalf("64 Mi blank lines gzip-compressed: %d %s, want 400 %q", status, raw, want)
	}
	if stored(t, base, "user:paced-3") != 0 || stored(t, base, "user:paced-5") != 1 {
		t.Fatal("an import refused (all or nothing) stored its lines, or one in chunks lost its first")
	}
}

// TestImportGzipRatioBounded: gzip makes 294 bytes of one line repeated
// from each byte sent (and 1,028 of blank lines), and every line is
// decoded and validated: the CPU an import costs was out of proportion to
// what its client sent. No import written by permatrix or a person
// compresses that well (a generated export ~12:1, assignments of
// sequential user and project ids ~23:1, one user's over sequential
// project ids ~45:1): a gzip import decompressed past 1 MiB
// and past 100 times its compressed bytes is refused.
func TestImportGzipRatioBounded(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	var regular strings.Builder
	for i := range 12_000 { // 1.5 MB, ~23:1
		fmt.Fprintf(&regular, `{"subject":"user:u%07d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%07d"}}`+"\n", i, i)
	}
	if status, raw := importBody(t, base, "?chunk=1000", []byte(regular.String()), true); status != 200 || !strings.Contains(raw, `"imported":12000`) {
		t.Fatalf("12,000 lines at ~23:1: %d %s", status, raw)
	}
	repeated := strings.Repeat(pacedLine(1), 200_000) // 21 MB, ~294:1
	status, raw := importBody(t, base, "", []byte(repeated), true)
	if want := "decompresses to more than 100 times its compressed size"; status != 400 || !strings.Contains(raw, want) {
		t.Fatalf("one line 200,000 times: %d %.300s, want 400 %q", status, raw, want)
	}
	if stored(t, base, "user:paced-1") != 0 {
		t.Fatal("an import refused (all or nothing) stored its lines")
	}
}

// TestImportEndsWhenItsClientLeaves: net/http cancels a request's context
// when its client closes the connection only once the handler has read
// the body to its end (it then watches the connection); an import reads
// its body a line at a time, and a gzip body's last bytes are read when
// its last line is, so an import whose client sent a whole gzip body and
// left went on to its last line, alone. An import's body is read ahead
// (up to 1 MiB), so that a body sent whole is read to its end at once and
// a client that leaves ends the import ("import stopped").
func TestImportEndsWhenItsClientLeaves(t *testing.T) {
	var logs harness.LockedBuffer
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	const lines = 60_000 // 7.7 MB, ~350 KB compressed: seconds of work
	var plain bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&plain, `{"subject":"user:u%07d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%07d"}}`+"\n", i, i)
	}
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestCompression)
	_, _ = zw.Write(plain.Bytes())
	_ = zw.Close()
	if body.Len() > 1<<20 {
		t.Fatalf("the body is %d bytes compressed: over what is read ahead", body.Len())
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/import?chunk=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n",
		docTestToken, body.Len())
	if _, err := conn.Write(body.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // the whole body sent, and gone
	last := fmt.Sprintf("user:u%07d", lines-1)
	// A guard only: the import ends one way or the other.
	for deadline := time.Now().Add(3 * time.Minute); !strings.Contains(logs.String(), "import stopped") && stored(t, base, last) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the import neither stopped nor ended:\n%s", logs.String())
		}
	}
	// It was seen gone when the body's last bytes were read: 59,000
	// lines on. Read ahead, it is seen gone a chunk or so after it left.
	if half := fmt.Sprintf("user:u%07d", lines/2); stored(t, base, half) != 0 {
		t.Fatalf("the import went on past half its lines after its client left:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "context canceled") {
		t.Errorf("the import stopped, but not for its client leaving:\n%s", logs.String())
	}
}
