package http_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
	permlisten "github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/test/harness"
)

// TestRequestsInFlightReturnToZero: a place under --max-requests-in-flight
// taken and never given back fills the bound for good, and the sidecar
// refuses every request after. 1,000 requests of every odd kind, over
// HTTP/1.1 and HTTP/2, 32 at once against a bound of 16 (so some are
// refused): answered ones, HEAD, unknown routes and methods, bodies over
// the limit, bodies cut by the client mid-way (a closed connection, an
// HTTP/2 stream reset), a consistency token never reached (waited for by
// the server, given up by the client), imports, exports and backups cut
// short, forward-auth, Expect: 100-continue without the body. When every
// handler has returned, permatrix_requests_in_flight{listener="api"} on
// the diagnostic listener's /metrics is 0, and the bound's every place is
// free again: 16 requests held at once are all served.
func TestRequestsInFlightReturnToZero(t *testing.T) {
	const total, workers, bound = 1000, 32, 16
	certs := harness.NewCerts(t)
	tlsCfg, err := permlisten.TLSFiles{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken, TLS: tlsCfg, MaxRequestsInFlight: bound,
		BodyLimit: 4 << 10, RequestTimeout: 200 * time.Millisecond})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	diag, err := srv.ListenDiagnostic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	base := "https://" + addr.String()

	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false), MaxConnsPerHost: workers,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientTLS(false), ForceAttemptHTTP2: true}}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	const assignment = `{"subject":"user:ann","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`
	const checkBody = `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`

	// do sends a request and reads its answer (at most max bytes of it
	// when max > 0, then drops it); errors are the point of many kinds.
	do := func(c *http.Client, ctx context.Context, method, path string, body io.Reader, max int64, headers ...string) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			t.Error(err)
			return
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := c.Do(req)
		if err != nil {
			return
		}
		if max > 0 {
			_, _ = io.CopyN(io.Discard, res.Body, max)
		} else {
			_, _ = io.Copy(io.Discard, res.Body)
		}
		res.Body.Close()
	}
	// raw writes head (and what follows) on a connection of its own over
	// HTTP/1.1, reads a line of the answer if one comes (wait), and closes
	// it.
	raw := func(head string, wait bool) {
		conn, err := tls.Dial("tcp", addr.String(), certs.ClientTLS(false))
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // a guard only
		if _, err := io.WriteString(conn, head); err != nil || !wait {
			return
		}
		_, _ = bufio.NewReader(conn).ReadString('\n')
	}
	// cut is a body that sends some bytes and then fails: the client
	// resets the stream (HTTP/2) or closes the connection (HTTP/1.1).
	cut := func(first string) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, first)
			pw.CloseWithError(fmt.Errorf("cut short"))
		}()
		return pr
	}
	admin := []string{"Authorization", "Bearer " + docTestToken}
	kinds := []func(i int){
		func(int) {
			do(h1, context.Background(), http.MethodPost, "/v1/check", strings.NewReader(checkBody), 0, "Content-Type", "application/json")
		},
		func(int) {
			do(h2, context.Background(), http.MethodPost, "/v1/check", strings.NewReader(checkBody), 0, "Content-Type", "application/json")
		},
		func(int) { do(h2, context.Background(), http.MethodHead, "/v1/systems", nil, 0) },
		func(int) { do(h1, context.Background(), http.MethodHead, "/v1/systems/celonis-task-mining", nil, 0) },
		func(int) { do(h1, context.Background(), http.MethodGet, "/no/such/route", nil, 0) },
		func(int) {
			do(h2, context.Background(), http.MethodPatch, "/v1/check", strings.NewReader(checkBody), 0)
		},
		func(int) {
			do(h1, context.Background(), http.MethodPost, "/v1/check", strings.NewReader(strings.Repeat(" ", 8<<10)+checkBody), 0)
		},
		func(int) {
			// A body announced and never sent in full: the client goes away.
			raw("POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"subject\":", false)
		},
		func(int) { do(h2, context.Background(), http.MethodPost, "/v1/check", cut(`{"subject":"ann",`), 0) },
		func(i int) {
			// A token never reached: the server waits for it, the client
			// gives up (every other one) or waits for the 503.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := h1
			if i%2 == 0 {
				c = h2
				time.AfterFunc(10*time.Millisecond, cancel)
			}
			do(c, ctx, http.MethodPost, "/v1/check", strings.NewReader(checkBody), 0, "X-Permatrix-Min-Revision", "1000000")
		},
		func(i int) {
			c := h1
			if i%2 == 0 {
				c = h2
			}
			do(c, context.Background(), http.MethodPost, "/v1/import", cut(assignment+"\n"+assignment[:20]), 0,
				append(admin, "Content-Type", "application/x-ndjson")...)
		},
		func(int) { do(h2, context.Background(), http.MethodGet, "/v1/export", nil, 1, admin...) },
		func(int) { do(h1, context.Background(), http.MethodGet, "/v1/backup", nil, 1, admin...) },
		func(int) {
			do(h1, context.Background(), http.MethodGet, "/v1/forward-auth/x", nil, 0, "X-Forwarded-User", "ann",
				"X-Original-Method", "GET")
		},
		func(int) {
			raw("POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n", true)
		},
		func(int) { do(h1, context.Background(), http.MethodGet, "/metrics", nil, 10) },
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				kinds[i%len(kinds)](i)
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()

	// Handlers still running for clients that went away (a token waited
	// for until the request timeout) end on their own: wait for the gauge,
	// with a guard far beyond the request timeout.
	inFlight := -1.0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if inFlight = scrapeInFlight(t, "http://"+diag.String()+"/metrics"); inFlight == 0 {
			break
		}
	}
	t.Logf("%d requests, %v refused at the bound", total, counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"))
	if inFlight != 0 {
		t.Fatalf("permatrix_requests_in_flight{listener=\"api\"} = %v after every request ended, want 0", inFlight)
	}
	// Every place is free: bound requests held at once (a body each that
	// has not ended yet) are all taken in, none refused.
	refusedBefore := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight")
	var held sync.WaitGroup
	writers := make([]*io.PipeWriter, bound)
	statuses := make([]int, bound)
	for i := range writers {
		pr, pw := io.Pipe()
		writers[i] = pw
		held.Add(1)
		go func() {
			defer held.Done()
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/check", pr)
			req.Header.Set("Content-Type", "application/json")
			res, err := h2.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses[i] = res.StatusCode
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if scrapeInFlight(t, "http://"+diag.String()+"/metrics") == bound {
			break
		}
	}
	for _, pw := range writers {
		_, _ = io.WriteString(pw, checkBody)
		pw.Close()
	}
	held.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("request %d of %d held at once: %d, want 200", i+1, bound, s)
		}
	}
	if n := counterOf(t, srv, "permatrix_requests_refused_total", "api", "in_flight"); n != refusedBefore {
		t.Errorf("%v requests refused with every place free, want none", n-refusedBefore)
	}
}

// scrapeInFlight is permatrix_requests_in_flight{listener="api"} as the
// diagnostic listener's /metrics shows it.
func scrapeInFlight(t *testing.T, url string) float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `permatrix_requests_in_flight{listener="api"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no permatrix_requests_in_flight{listener=\"api\"} in %s", url)
	return 0
}
