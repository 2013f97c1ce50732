package api_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// importLine is line n of a generated import: user:imp-<n> may edit Celonis
// users (one assignment per line, each a different grant).
func importLine(n int) string {
	return fmt.Sprintf(`{"subject":"user:imp-%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`+"\n", n)
}

// Line 1 of a refused import makes user:mem a Celonis member; the vendor
// rules then refuse edit_users for it.
const (
	memberLine  = `{"subject":"user:mem","system":"celonis-task-mining","role":"member","scope":{"type":"service"}}` + "\n"
	refusedLine = `{"subject":"user:mem","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}` + "\n"
)

// imported is the answer to a streamed import.
type imported struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r imported) num(key string) int {
	f, _ := r.Body[key].(float64)
	return int(f)
}

func (r imported) message() string {
	e, _ := r.Body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// streamImport POSTs /v1/import?query with the body gen writes, through a
// pipe: the body is made as it is sent, never held whole (gzip-compressed
// on the way if zip). gen's write fails once the server has answered; that
// is how a generator learns to stop.
func streamImport(ctx context.Context, t *testing.T, s *harness.Server, query string, zip bool, gen func(w io.Writer) error) (imported, error) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		var w io.Writer = pw
		var zw *gzip.Writer
		if zip {
			zw = gzip.NewWriter(pw)
			w = zw
		}
		err := gen(w)
		if err == nil && zw != nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	// A cancelled request ends its body too (the transport waits for the
	// body's Read to return before it gives up).
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/import"+query, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+harness.Token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	if zip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return imported{}, err
	}
	defer resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe) // stops the generator if the server answered early
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := imported{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("import answered %d %q: %v", resp.StatusCode, raw, err)
	}
	return r, nil
}

// lines writes importLine(from) … importLine(to).
func lines(w io.Writer, from, to int) error {
	for n := from; n <= to; n++ {
		if _, err := io.WriteString(w, importLine(n)); err != nil {
			return err
		}
	}
	return nil
}

// countAssignments pages through GET /v1/assignments.
func countAssignments(t *testing.T, s *harness.Server) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		r := s.Do(http.MethodGet, "/v1/assignments?limit=1000&cursor="+url.QueryEscape(cursor), nil, true)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		n += len(r.Body["assignments"].([]any))
		cursor, _ = r.Body["next_cursor"].(string)
		if cursor == "" {
			return n
		}
	}
}

// holds reports whether user:imp-<n>'s line is stored.
func holds(t *testing.T, s *harness.Server, n int) bool {
	t.Helper()
	r := s.Do(http.MethodGet, fmt.Sprintf("/v1/assignments?subject=user:imp-%d", n), nil, true)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	return len(r.Body["assignments"].([]any)) > 0
}

// waitFor polls cond (a guard against hanging, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// liveHeap is the process's heap after a collection: what is live.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// An import larger than the all-or-nothing limit (100,000 lines) and the
// body limit (1 MiB), lasting longer than the request timeout (here 1 s:
// the client pauses for 1.5 s mid-stream), streams through in chunks. The
// body (≈ 14 MB) is generated as it is sent; the process's live heap
// (server and client share it) is sampled along the way and stays well
// below what holding the import would take. (On etcd the import is 6,000
// lines: the streaming is the same, and etcd commits are slower and
// smaller — as many lines as fit etcd's --max-txn-ops.)
func TestImportStreamsPastTheLimits(t *testing.T) {
	s := harness.Start(t, harness.Options{RequestTimeout: time.Second})
	total, chunk, step := 120_000, 2000, 20_000
	if harness.StoreKind() == "etcd" {
		total, chunk, step = 6000, 1000, 2000
	}
	base := liveHeap()
	var peak uint64
	res, err := streamImport(context.Background(), t, s, "?chunk="+strconv.Itoa(chunk), false, func(w io.Writer) error {
		for from := 1; from <= total; from += step {
			if err := lines(w, from, from+step-1); err != nil {
				return err
			}
			peak = max(peak, liveHeap())
			if from == 1 {
				time.Sleep(1500 * time.Millisecond)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.num("imported") != total || res.num("lines") != total || !commits(res, total/chunk) ||
		res.num("last_line") != total || uint64(res.num("revision")) > s.Svc.Revision() {
		t.Fatalf("import: %d %s (store at %d)", res.Status, res.Raw, s.Svc.Revision())
	}
	if n := countAssignments(t, s); n != total {
		t.Fatalf("store holds %d assignments, want %d", n, total)
	}
	// What stays in memory is one chunk and the store's bounded index of
	// recent changes (a few hundred bytes per line imported, at most
	// 2^18 units): holding the import's text or its decoded lines would
	// take tens of MiB more.
	if grew := int64(peak) - int64(base); grew > 48<<20 {
		t.Fatalf("the live heap grew by %d MiB during the import", grew>>20)
	}
	t.Logf("live heap: %d MiB before, at most %d MiB during the import", base>>20, peak>>20)
	if !s.Allowed(check(fmt.Sprintf("imp-%d", total), "edit_users", nil)) {
		t.Fatal("an imported grant is not effective")
	}
}

// commits reports whether an import of chunks chunks was committed as it
// should be: a commit per chunk, or — on etcd, whose transactions hold
// fewer lines — a chunk in several commits.
func commits(res imported, chunks int) bool {
	if harness.StoreKind() == "etcd" {
		return res.num("chunks") >= chunks
	}
	return res.num("chunks") == chunks
}

// A line refused mid-stream: the chunks before it stay, the answer is the
// line's error with how far the import got (message and headers), and
// nothing of the refused chunk is stored — on etcd, nothing of it but the
// lines committed before the refused one (a chunk is committed in as many
// commits as it takes there).
func TestImportRefusedMidStream(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	before := s.Svc.Revision()
	res, err := streamImport(context.Background(), t, s, "?chunk=1000", false, func(w io.Writer) error {
		if _, err := io.WriteString(w, memberLine); err != nil {
			return err
		}
		if err := lines(w, 2, 2499); err != nil {
			return err
		}
		if _, err := io.WriteString(w, refusedLine); err != nil {
			return err
		}
		return lines(w, 2501, 20_000) // more than the server reads
	})
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.Atoi(res.Header.Get("X-Permatrix-Import-Last-Line"))
	if harness.StoreKind() == "bolt" && last != 2000 || last < 2000 || last >= 2500 {
		t.Fatalf("the import got to line %d (%v)", last, res.Header)
	}
	if res.Status != 422 || !strings.Contains(res.message(), "line 2500: user:mem is a Celonis member") ||
		!strings.Contains(res.message(), fmt.Sprintf("lines 1 to %d are imported: %d assignments in ", last, last)) {
		t.Fatalf("refused line: %d %s", res.Status, res.Raw)
	}
	// (The store's revision may have moved past the last chunk's: etcd
	// reserves assignment ids with writes of its own.)
	rev, err := strconv.ParseUint(res.Header.Get("X-Permatrix-Import-Revision"), 10, 64)
	if res.Header.Get("X-Permatrix-Imported") != strconv.Itoa(last) || err != nil || rev <= before || rev > s.Svc.Revision() {
		t.Fatalf("progress headers %v (store from %d to %d)", res.Header, before, s.Svc.Revision())
	}
	if n := countAssignments(t, s); n != last || !holds(t, s, last) || holds(t, s, last+1) {
		t.Fatalf("store holds %d assignments, want lines 1 to %d", n, last)
	}

	// A malformed line is 400 the same way; all or nothing, no headers and
	// nothing stored. Line 1 was stored above: already stored, not imported.
	body := importLine(1) + importLine(2) + `{"subject":"user:x","Subject":"user:y"}` + "\n" + importLine(4)
	res, _ = streamImport(context.Background(), t, s, "?chunk=2", false, func(w io.Writer) error { _, err := io.WriteString(w, body); return err })
	if res.Status != 400 || !strings.Contains(res.message(), `line 3: unknown key "Subject"`) || res.Header.Get("X-Permatrix-Import-Last-Line") != "2" ||
		res.Header.Get("X-Permatrix-Imported") != "1" || res.Header.Get("X-Permatrix-Import-Already-Stored") != "1" {
		t.Fatalf("malformed line in chunks: %d %v %s", res.Status, res.Header, res.Raw)
	}
	// Sent again: lines 1 and 2 are stored already, no commit is made, and
	// the answer still says where to resume.
	res, _ = streamImport(context.Background(), t, s, "?chunk=2", false, func(w io.Writer) error { _, err := io.WriteString(w, body); return err })
	if res.Status != 400 || res.Header.Get("X-Permatrix-Import-Last-Line") != "2" || res.Header.Get("X-Permatrix-Imported") != "0" ||
		res.Header.Get("X-Permatrix-Import-Already-Stored") != "2" || !strings.Contains(res.message(), "lines 1 to 2 are stored already: nothing was imported") {
		t.Fatalf("malformed line in chunks, sent again: %d %v %s", res.Status, res.Header, res.Raw)
	}
	rev = s.Svc.Revision()
	res, _ = streamImport(context.Background(), t, s, "", false, func(w io.Writer) error {
		_, err := io.WriteString(w, strings.ReplaceAll(body, "imp-", "aon-"))
		return err
	})
	if res.Status != 400 || res.Header.Get("X-Permatrix-Imported") != "" || s.Svc.Revision() != rev {
		t.Fatalf("malformed line, all or nothing: %d %v %s", res.Status, res.Header, res.Raw)
	}
}

// The client goes away mid-import, in the middle of a chunk: the server
// stops, the chunks committed stay, and nothing of the chunk it was
// reading is stored.
func TestImportClientDisconnect(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := streamImport(ctx, t, s, "?chunk=500", false, func(w io.Writer) error {
			if err := lines(w, 1, 1250); err != nil {
				return err
			}
			<-hold
			return nil
		})
		done <- err
	}()
	waitFor(t, "two chunks committed", func() bool { return holds(t, s, 1000) })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled import answered")
	}
	close(hold)
	// The server has finished with the request once its metrics count it:
	// 400 if the client left while the import read its body, 499 if it
	// left while a commit was made — on etcd, where a chunk is several
	// commits and each waits for the replica, the client's leaving may
	// well come then (the test waited for a 400 that never came).
	waitFor(t, "the server to end the import", func() bool {
		r := s.Do(http.MethodGet, "/metrics", nil, false)
		return strings.Contains(string(r.Raw), `permatrix_http_requests_total{code="400",method="POST",url="/v1/import"} 1`) ||
			strings.Contains(string(r.Raw), `permatrix_http_requests_total{code="499",method="POST",url="/v1/import"} 1`)
	})
	if n := countAssignments(t, s); n != 1000 || holds(t, s, 1001) {
		t.Fatalf("after the disconnect the store holds %d assignments, want the two chunks (1000)", n)
	}
}

// Writes made during a long chunked import are acknowledged while the
// import is still running: the import lets them in between its chunks.
// (The body is still being sent, and ends only once the writes were
// acknowledged: a write that waited for the import would deadlock here.)
func TestImportLetsWritesInBetweenChunks(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	const limit = 100_000 // lines the import sends at most while the writes wait
	written := make(chan struct{})
	sent := 0
	type result struct {
		res imported
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := streamImport(context.Background(), t, s, "?chunk=200", false, func(w io.Writer) error {
			for sent < limit {
				select {
				case <-written:
					return lines(w, sent+1, sent+10) // and a last few lines after them
				default:
				}
				sent++
				if _, err := io.WriteString(w, importLine(sent)); err != nil {
					return err
				}
			}
			return nil
		})
		done <- result{res, err}
	}()
	waitFor(t, "the import's first chunk", func() bool { return holds(t, s, 200) })
	var revs []float64
	for i := range 5 {
		r := s.Do(http.MethodPost, "/v1/assignments", map[string]any{"subject": fmt.Sprintf("user:single-%d", i), "system": tm, "role": "analyst", "scope": service}, true)
		if r.Status != 201 {
			t.Fatalf("single write during the import: %d %s", r.Status, r.Raw)
		}
		revs = append(revs, r.Body["revision"].(float64))
	}
	close(written)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("the import sent %d lines before the writes were acknowledged", sent)
	if sent >= limit {
		t.Fatalf("the writes were acknowledged only after the import had sent all its %d lines", limit)
	}
	if r.res.Status != 200 || r.res.num("imported") != sent+10 || r.res.num("chunks") < 2 {
		t.Fatalf("import: %d %s (sent %d lines)", r.res.Status, r.res.Raw, sent+10)
	}
	for _, rev := range revs {
		if rev >= r.res.Body["revision"].(float64) {
			t.Fatalf("a write at revision %v was not made during the import (last commit %v)", rev, r.res.Body["revision"])
		}
	}
	if n := countAssignments(t, s); n != sent+10+5 {
		t.Fatalf("store holds %d assignments, want %d", n, sent+15)
	}
}

// A gzip-compressed import streams too (its decompressed size is past the
// body limit), and its lines are bounded like any: a line that
// decompresses to more than 64 KiB is 400 without reading it whole.
func TestImportGzip(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	const total = 12_000 // ≈ 1.3 MB decompressed
	res, err := streamImport(context.Background(), t, s, "?chunk=1000", true, func(w io.Writer) error { return lines(w, 1, total) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.num("imported") != total || !commits(res, 12) || countAssignments(t, s) != total {
		t.Fatalf("gzip import: %d %s", res.Status, res.Raw)
	}
	rev := s.Svc.Revision()
	res, err = streamImport(context.Background(), t, s, "?chunk=10", true, func(w io.Writer) error {
		if _, err := io.WriteString(w, `{"subject":"user:`); err != nil {
			return err
		}
		chunk := strings.Repeat("x", 1<<20)
		for range 64 { // 64 MiB, compressed to ≈ 64 KiB
			if _, err := io.WriteString(w, chunk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 400 || !strings.Contains(res.message(), "line 1 is longer than 65536 bytes") || s.Svc.Revision() != rev {
		t.Fatalf("a 64 MiB gzip line: %d %s", res.Status, res.Raw)
	}
}

// chunk is a whole number from 1 to 50,000 (0 or none: all or nothing);
// anything else is 400 and stores nothing.
func TestImportChunkParameter(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	rev := s.Svc.Revision()
	for _, bad := range []string{"abc", "-1", "50001", "1.5", "0x10", "1e3", "99999999999999999999", "%20"} {
		r := s.Do(http.MethodPost, "/v1/import?chunk="+bad, importLine(1), true)
		if r.Status != 400 || !strings.Contains(string(r.Raw), "chunk must be") {
			t.Errorf("chunk=%s: %d %s", bad, r.Status, r.Raw)
		}
	}
	if s.Svc.Revision() != rev || countAssignments(t, s) != 0 {
		t.Fatal("a refused chunk parameter wrote")
	}
	for i, ok := range []string{"0", "1", "50000"} {
		r := s.Do(http.MethodPost, "/v1/import?chunk="+ok, importLine(i+1)+importLine(i+10), true)
		if r.Status != 200 || r.Body["imported"] != float64(2) {
			t.Errorf("chunk=%s: %d %s", ok, r.Status, r.Raw)
		}
	}
}

// A chunk larger than the store's commits take is committed in as many
// commits as it needs: on etcd at its default --max-txn-ops (128) an
// import of 5,000 lines with chunk=10000 is several commits, each of whole
// lines, and succeeds (one commit on bbolt). All or nothing, the same
// import must be one commit: on etcd that is 413, naming the limit, and
// nothing is stored.
func TestImportChunkFitsTheStore(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	const total = 5000
	aon, err := streamImport(context.Background(), t, s, "", false, func(w io.Writer) error {
		for n := 1; n <= total; n++ {
			if _, err := io.WriteString(w, strings.Replace(importLine(n), "imp-", "aon-", 1)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if harness.StoreKind() == "etcd" {
		// (etcd's revision may move: a sidecar reserves assignment ids
		// with writes of its own.)
		if aon.Status != 413 || !strings.Contains(aon.message(), "an all-or-nothing import is one commit, and from line ") ||
			!strings.Contains(aon.message(), "--max-txn-ops of 128") || !strings.Contains(aon.message(), "chunk=N") ||
			countAssignments(t, s) != 0 {
			t.Fatalf("all or nothing, %d lines: %d %s", total, aon.Status, aon.Raw)
		}
	} else if aon.Status != 200 || aon.num("chunks") != 1 || countAssignments(t, s) != total {
		t.Fatalf("all or nothing, %d lines: %d %s", total, aon.Status, aon.Raw)
	}

	res, err := streamImport(context.Background(), t, s, "?chunk=10000", false, func(w io.Writer) error { return lines(w, 1, total) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.num("imported") != total || res.num("last_line") != total || uint64(res.num("revision")) > s.Svc.Revision() {
		t.Fatalf("chunk=10000, %d lines: %d %s", total, res.Status, res.Raw)
	}
	if harness.StoreKind() == "etcd" && res.num("chunks") < total/128 || harness.StoreKind() == "bolt" && res.num("chunks") != 1 {
		t.Fatalf("%d lines in %d commits", total, res.num("chunks"))
	}
	t.Logf("%d lines, chunk=10000: %d commits", total, res.num("chunks"))
	if !holds(t, s, 1) || !holds(t, s, total) || !s.Allowed(check(fmt.Sprintf("imp-%d", total), "edit_users", nil)) {
		t.Fatal("imported lines missing")
	}
}
