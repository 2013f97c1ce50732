package http_test

import (
	"bufio"
	"context"
	"encoding/json"
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

// pacedLine is line n of a paced import: user:paced-<n> is a Celonis analyst.
func pacedLine(n int) string {
	return fmt.Sprintf(`{"subject":"user:paced-%d","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`+"\n", n)
}

// postImport POSTs /v1/import?query with the body gen writes as it goes (a
// pipe: the body is sent while it is made) and returns the status and the
// answer (0 and the error when there is no answer).
func postImport(t *testing.T, base, query string, gen func(w io.Writer) error) (int, map[string]any, error) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen(pw)) }()
	defer pr.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/import"+query, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+docTestToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("POST /v1/import%s: %d %q: %v", query, res.StatusCode, raw, err)
	}
	return res.StatusCode, body, nil
}

// stored is how many assignments the store holds for subject.
func stored(t *testing.T, base, subject string) int {
	t.Helper()
	res, raw := exchange(t, http.MethodGet, base+"/v1/assignments?subject="+subject, docTestToken)
	var body struct{ Assignments []any }
	if res.StatusCode != http.StatusOK || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("GET /v1/assignments: %d %s", res.StatusCode, raw)
	}
	return len(body.Assignments)
}

// The wait for an import's client is bounded per wait, not per chunk: a
// client that keeps sending, slower than a chunk per importIdle, is not cut
// off (it was, with no answer, once importIdle had passed since the start
// or the last commit); one that stops sending for importIdle is.
func TestImportIdleIsPerWait(t *testing.T) {
	defer permhttp.SetStreamIdle(time.Second)()
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))

	const lines = 12
	status, body, err := postImport(t, base, "?chunk=10000", func(w io.Writer) error {
		for i := 1; i <= lines; i++ {
			if _, err := io.WriteString(w, pacedLine(i)); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond) // 2.4 s in all, never 1 s idle
		}
		return nil
	})
	if err != nil || status != http.StatusOK || body["lines"] != float64(lines) {
		t.Fatalf("a client sending a line every 200 ms for 2.4 s (idle bound 1 s): %d %v %v, want 200 and %d lines", status, body, err, lines)
	}
	if n := stored(t, base, "user:paced-12"); n != 1 {
		t.Fatalf("the last line is stored %d times", n)
	}

	status, body, err = postImport(t, base, "?chunk=10000", func(w io.Writer) error {
		if _, err := io.WriteString(w, pacedLine(100)); err != nil {
			return err
		}
		time.Sleep(4 * time.Second) // idle past the bound
		_, err := io.WriteString(w, pacedLine(101))
		return err
	})
	if status == http.StatusOK {
		t.Fatalf("a client idle for 4 s (idle bound 1 s): %d %v %v, want the import given up", status, body, err)
	}
	if n := stored(t, base, "user:paced-100"); n != 0 {
		t.Fatalf("the line read before the client went idle is stored: %d", n)
	}
}

// A client that goes away in the middle of an import is logged ("import
// stopped", how far it got) also when nothing was committed yet — an
// all-or-nothing import, or the first chunk: no one reads the answer, so
// the log is the only word of it (there was none).
func TestImportClientGoneIsLogged(t *testing.T) {
	var logs harness.LockedBuffer
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	for _, query := range []string{"", "?chunk=10"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		head := "POST /v1/import" + query + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + docTestToken + "\r\nTransfer-Encoding: chunked\r\n\r\n"
		var body strings.Builder
		for i := 1; i <= 3; i++ {
			body.WriteString(pacedLine(i))
		}
		if _, err := fmt.Fprintf(conn, "%s%x\r\n%s\r\n", head, body.Len(), body.String()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		_ = conn.Close() // gone before the body's end
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "import stopped"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("POST /v1/import%s: the client went away and nothing was logged:\n%s", query, logs.String())
			}
		}
		if !strings.Contains(logs.String(), "nothing was imported") {
			t.Errorf("POST /v1/import%s: the log does not say how far the import got:\n%s", query, logs.String())
		}
		logs.Reset()
	}
	if n := stored(t, base, "user:paced-1"); n != 0 {
		t.Fatalf("a line of an import whose client went away is stored: %d", n)
	}
}

// chunk is given once, as a whole number: given twice the request means
// two things — ?chunk=10000&chunk=0 (a wrapper asking all or nothing after
// the caller's chunk) was committed in chunks, the first value winning
// unseen — and chunk= with no number (an unset variable) was all or
// nothing; both are 400 and store nothing.
func TestImportChunkGivenOnce(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for _, query := range []string{"?chunk=1&chunk=0", "?chunk=0&chunk=1", "?chunk=5&chunk=abc", "?chunk=", "?chunk"} {
		status, body, err := postImport(t, base, query, func(w io.Writer) error {
			_, err := io.WriteString(w, pacedLine(1)+pacedLine(2))
			return err
		})
		e, _ := body["error"].(map[string]any)
		if err != nil || status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(e["message"]), "chunk") {
			t.Errorf("POST /v1/import%s: %d %v %v, want 400 about chunk", query, status, body, err)
		}
	}
	if n := stored(t, base, "user:paced-1"); n != 0 {
		t.Fatalf("an import with a refused chunk parameter stored %d", n)
	}
}

// A shutdown stops an import in flight at once — an import may never end,
// and the shutdown waits for in-flight requests only so long — and answers
// it: 503, how far it got (headers and message, the commits made stay),
// and the log says so. The shutdown waited for the import's client (here:
// forever, until its own timeout), then the process went away with no
// answer and no word of how far the import had got.
func TestShutdownStopsAnImport(t *testing.T) {
	var logs harness.LockedBuffer
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	base := serveOn(t, srv)

	type answer struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		pr, pw := io.Pipe()
		go func() {
			for i := 1; ; i++ {
				if _, err := io.WriteString(pw, pacedLine(i)); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		defer pr.Close()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/import?chunk=10", pr)
		req.Header.Set("Authorization", "Bearer "+docTestToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		answered <- answer{res.StatusCode, res.Header, body, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); stored(t, base, "user:paced-20") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("two chunks were not committed")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown with an import in flight: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	var a answer
	select {
	case a = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the import was not answered")
	}
	last := a.header.Get("X-Permatrix-Import-Last-Line")
	if a.err != nil || a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "shutting down") || last == "" || !strings.HasSuffix(last, "0") {
		t.Fatalf("the import stopped by a shutdown: %d %v %s (last line %q, %v), want 503 saying how far it got in whole chunks", a.status, a.header, a.body, last, a.err)
	}
	if !strings.Contains(logs.String(), "import stopped") {
		t.Errorf("the import stopped by a shutdown is not logged:\n%s", logs.String())
	}
}

// A blank line is one of JSON's whitespace only (space, tab, CR): a line of
// other whitespace (a no-break space, a vertical tab, U+2028) is not
// JSON and is refused with its number, as any other malformed line; it was
// skipped as blank.
func TestImportBlankLineIsJSONWhitespace(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	for _, odd := range []string{"\u00a0", "\v", "\f", "\u2028", "\u0085"} {
		status, body, err := postImport(t, base, "", func(w io.Writer) error {
			_, err := io.WriteString(w, " \t\r\n"+odd+"\n"+pacedLine(1))
			return err
		})
		e, _ := body["error"].(map[string]any)
		if msg := fmt.Sprint(e["message"]); err != nil || status != http.StatusBadRequest || !strings.HasPrefix(msg, "line 2: malformed JSON") {
			t.Errorf("a line of %q: %d %v %v, want 400: line 2 is malformed JSON", odd, status, body, err)
		}
	}
	if n := stored(t, base, "user:paced-1"); n != 0 {
		t.Fatalf("an import with a malformed line stored %d", n)
	}
}

// A client that sends a whole import and goes away while it is committed
// (a proxy's timeout, a killed curl): the commit being made is made whole
// or not at all, and the log says how far the import got — it said
// nothing (the body had been read to its end, and the import stopped
// when the request's context ended).
func TestImportClientGoneWhileCommitting(t *testing.T) {
	var logs harness.LockedBuffer
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	const n = 30_000 // judged for a second or more
	var body strings.Builder
	for i := 1; i <= n; i++ {
		body.WriteString(pacedLine(i))
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "POST /v1/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", docTestToken, body.Len(), body.String()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_ = conn.Close()
	lastLine := fmt.Sprintf("user:paced-%d", n)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "import stopped"); time.Sleep(50 * time.Millisecond) {
		if stored(t, base, lastLine) == 1 {
			t.Skip("the import was committed before the server noticed the client had left")
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client went away while its import was committed, and nothing was logged:\n%s", logs.String())
		}
	}
	if first, last := stored(t, base, "user:paced-1"), stored(t, base, lastLine); first != last {
		t.Fatalf("the import is half stored: line 1 %d, line %d %d", first, n, last)
	}
}

// A long import leaves a trail in the log at the default level — how far it
// has got, at most every importLogEvery — so that after a crash or kill -9
// (no answer, no "import stopped") the log says where the import was; the
// commits were logged only at debug.
func TestImportProgressIsLogged(t *testing.T) {
	var logs harness.LockedBuffer
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	status, body, err := postImport(t, base, "?chunk=1", func(w io.Writer) error {
		for i := 1; i <= 60; i++ {
			if _, err := io.WriteString(w, pacedLine(i)); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond) // 6 s in all
		}
		return nil
	})
	if err != nil || status != http.StatusOK {
		t.Fatalf("import: %d %v %v", status, body, err)
	}
	var progress []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=INFO") && strings.Contains(l, "import") && strings.Contains(l, "last_line=") {
			progress = append(progress, l)
		}
	}
	if len(progress) == 0 || len(progress) > 3 {
		t.Fatalf("a 6 s import logged its progress %d times at INFO, want 1 to 3:\n%s", len(progress), logs.String())
	}
}

// A client that stalls past the idle bound, but is still there, gets the
// answer — 400, and how far the import got — not an empty reply: the
// write deadline had passed with the read deadline, so the answer could
// not be sent.
func TestImportIdleClientGetsTheAnswer(t *testing.T) {
	defer permhttp.SetStreamIdle(time.Second)()
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := pacedLine(1) + pacedLine(2) + pacedLine(3)
	if _, err := fmt.Fprintf(conn, "POST /v1/import?chunk=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", docTestToken, len(body), body); err != nil {
		t.Fatal(err)
	}
	// Then nothing: the server gives up after 1 s and answers.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a client idle past the bound got no answer: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("X-Permatrix-Import-Last-Line") != "3" || !strings.Contains(string(raw), "lines 1 to 3 are imported") {
		t.Fatalf("a client idle past the bound: %d %v %s, want 400 saying lines 1 to 3 are imported", res.StatusCode, res.Header, raw)
	}
}

// An import refused while its client is still sending gets its answer:
// the server stopped reading, answered and closed the connection at once,
// and the client's next write met a reset — Go's client, writing its body
// when the reset came, reported "connection reset by peer" instead of the
// 400 it had been sent. The connection is closed as net/http closes one
// past http.MaxBytesReader's limit: half-closed, and fully only after a
// delay, so that writes in flight do not reset it before the answer is read.
func TestImportRefusedWhileSendingGetsTheAnswer(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line := `{"subject":"user:` + strings.Repeat("x", 140<<10)
	if _, err := fmt.Fprintf(conn, "POST /v1/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", docTestToken, len(line), line); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	answered := time.Now()
	if err != nil {
		t.Fatalf("an import refused while its client was sending: no answer: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "longer than") {
		t.Fatalf("an import refused while its client was sending: %d %s, want 400 saying line 1 is too long", res.StatusCode, raw)
	}
	sendRestAfterAnswer(t, conn, br, answered, strings.Repeat("y", 8<<10))
}

// An import stopped by a shutdown while its client is still sending gets
// its 503: the read deadline that ends the wait for the client left the
// body unread, net/http took that for a broken body and closed the
// connection at once, and the client's next write met a reset — Go's
// client, writing its body when it came, reported "connection reset by
// peer" instead of the 503 and how far the import got. The connection is
// closed as one past http.MaxBytesReader's limit: the answer, a
// half-close, and the full close only after a delay.
func TestShutdownImportWhileSendingGetsTheAnswer(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	base := serveOn(t, srv)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var lines strings.Builder
	for i := 1; i <= 25; i++ {
		lines.WriteString(pacedLine(i))
	}
	if _, err := fmt.Fprintf(conn, "POST /v1/import?chunk=10 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", docTestToken, lines.Len(), lines.String()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); stored(t, base, "user:paced-20") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("two chunks were not committed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { _ = srv.Shutdown(ctx) }()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	answered := time.Now()
	if err != nil {
		t.Fatalf("an import stopped by a shutdown: no answer: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("X-Permatrix-Import-Last-Line") != "20" {
		t.Fatalf("an import stopped by a shutdown: %d %v %s, want 503 saying lines 1 to 20 are imported", res.StatusCode, res.Header, raw)
	}
	sendRestAfterAnswer(t, conn, br, answered, pacedLine(26))
}

// sendRestAfterAnswer writes the rest of a body after its answer was read
// (at answered), as a client that writes its body before it reads the
// answer still sends it: the connection must take it — when it had been
// closed at once, the second write met the reset — and then end without a
// reset (net/http's graceful close: a half-close, the full close 500 ms
// later). A test held up past that linger cannot tell, and skips.
func sendRestAfterAnswer(t *testing.T, conn net.Conn, br *bufio.Reader, answered time.Time, chunk string) {
	t.Helper()
	for i := range 3 {
		time.Sleep(10 * time.Millisecond)
		if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
			if late := time.Since(answered); late > 400*time.Millisecond {
				t.Skipf("held up %v after the answer, past net/http's 500 ms linger: cannot tell (%v)", late, err)
			}
			t.Fatalf("write %d of the rest of the body, %v after the answer: %v", i+1, time.Since(answered), err)
		}
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the answer the connection gave %d bytes, %v; want its end (io.EOF)", n, err)
	}
}
