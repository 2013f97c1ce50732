package management

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/tracing"
)

// OPA's bundle reader holds every file of a downloaded tarball in memory
// before it reads any, each up to size_limit_bytes, with no bound on their
// sum: a megabyte of gzipped zeros, in files just under the limit, makes
// gigabytes. OPA's downloader offers no hook on the body, and its services'
// HTTP clients are built inside OPA's rest package; the one seam there is
// the transport OPA's distributed tracing wraps every service client's
// in. The manager passes itself as a tracing option, and this "tracing"
// service wraps the transport of those clients (and of nothing else: other
// options pass through) in downloadLimit.
func init() { tracing.RegisterHTTPTracing(transports{}) }

type transports struct{}

// limitOption marks the tracing options of a Manager's clients.
type limitOption struct{ m *Manager }

func (transports) NewTransport(rt http.RoundTripper, opts tracing.Options) http.RoundTripper {
	for _, o := range opts {
		if l, ok := o.(limitOption); ok {
			if rt == nil {
				rt = http.DefaultTransport
			}
			if wrap := l.m.traceRequests.Load(); wrap != nil {
				rt = (*wrap)(rt) // OPA's distributed tracing (TraceRequests)
			}
			return &downloadLimit{next: rt, m: l.m}
		}
	}
	return rt
}

func (transports) NewHandler(h http.Handler, _ string, _ tracing.Options) http.Handler { return h }

// LimitDownloads bounds what the services' clients download: every body
// of a GET answered 200 (a bundle; decision logs are POSTed) must unpack
// to at most n bytes and arrive within d of its headers, and a long poll
// must be answered within d of its wait, or the request fails. n <= 0: no
// bound.
func (m *Manager) LimitDownloads(n int64, d time.Duration) {
	m.downloadWithin.Store(int64(d))
	m.downloadMax.Store(n)
}

// downloadLimit reads every answer's body before OPA does. Of a
// downloaded bundle: at most about n bytes (gzip adds a little to data it
// cannot compress), within the time given (OPA's
// response_header_timeout_seconds ends at the headers, and OPA reads the
// body without a deadline: a body stalled mid-stream stopped polling for
// good, silently), and it must gunzip to at most n; what is not gzip is
// handed on as it is, for OPA's reader to refuse. Of any other answer (an
// error, an answer to a decision-log upload or a status report, followed
// through redirects or not): at most errorBodyMax bytes, within
// answerWithin. The body is then handed on from memory.
type downloadLimit struct {
	next http.RoundTripper
	m    *Manager
}

func (t *downloadLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.m.isStatusReport(req) {
		var err error
		if req, err = redactStatusReport(req); err != nil {
			return nil, err
		}
	}
	n := t.m.downloadMax.Load()
	within := time.Duration(t.m.downloadWithin.Load())
	// A GET that follows the redirect of another method's answer (a
	// status report or a decision-log upload answered 303) is that
	// answer's, not a bundle's.
	get := req.Method == http.MethodGet && origin(req).Method == http.MethodGet
	download := n > 0 && get
	var resp *http.Response
	var err error
	if download {
		resp, err = t.roundTrip(req, within)
	} else {
		resp, err = t.next.RoundTrip(req)
	}
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if !download && get && resp.StatusCode == http.StatusOK {
		return resp, nil // no bound asked (LimitDownloads n <= 0): the bundle as it comes
	}
	if !download || resp.StatusCode != http.StatusOK {
		// OPA's plugins drain an answer's body before they go on (to reuse
		// the connection): an error answer to a download, or an answer to
		// a decision-log upload, whose body never ended stopped polling
		// or uploading for good (and serve's shutdown with it). They only
		// log it: at most errorBodyMax bytes of it are read, within
		// answerWithin.
		head, _, _ := readWithin(resp.Body, errorBodyMax, answerWithin)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(head))
		return resp, nil
	}
	bound := n + n/64 + 64<<10
	raw, timedOut, err := readWithin(resp.Body, bound+1, within)
	resp.Body.Close()
	if timedOut {
		return nil, fmt.Errorf("bundle download: the body did not arrive within %s of its headers", within)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > bound {
		return nil, fmt.Errorf("bundle download is over %d bytes (size_limit_bytes %d)", bound, n)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
		unpacked, err := io.Copy(io.Discard, io.LimitReader(zr, n+1))
		if err == nil && unpacked > n {
			return nil, fmt.Errorf("bundle unpacks to more than %d bytes (size_limit_bytes bounds the whole bundle)", n)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	return resp, nil
}

// origin is the request a chain of redirects began with: req itself if
// it follows none (net/http sets a redirected request's Response to the
// answer that redirected it).
func origin(req *http.Request) *http.Request {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	return req
}

// MinLongPoll is the shortest a long poll takes: a server that says it
// long-polls but answers at once is asked at most once in that time. After
// a long poll OPA's downloader asks again with no delay, so such a server
// (a static one set to OPA's long-polling Content-Type) was asked
// thousands of times a second.
const MinLongPoll = time.Second

// errorBodyMax is how much of an answer's body is read but for a
// downloaded bundle's.
const errorBodyMax = 64 << 10

// answerWithin bounds the time the body of an answer but a downloaded
// bundle may take (the time OPA's response header timeout gives the
// headers, by default): what is read of it is only logged.
const answerWithin = 10 * time.Second

// readWithin reads at most max bytes of body, giving up (timedOut) when
// they have not arrived within d (0: no deadline).
func readWithin(body io.ReadCloser, max int64, d time.Duration) (raw []byte, timedOut bool, err error) {
	var timer *time.Timer
	if d > 0 {
		timer = time.AfterFunc(d, func() { body.Close() }) // ends a Read in progress
	}
	raw, err = io.ReadAll(io.LimitReader(body, max))
	if timer != nil && !timer.Stop() {
		return raw, true, err
	}
	return raw, false, err
}

// roundTrip sends req. A long poll (Prefer: wait=N) must be answered
// within its wait and then within: OPA turns its response header timeout
// off for long polls, and a server or proxy that held one for good stopped
// polling, silently. A long poll takes at least MinLongPoll.
func (t *downloadLimit) roundTrip(req *http.Request, within time.Duration) (*http.Response, error) {
	wait := preferWait(req.Header)
	if wait <= 0 {
		return t.next.RoundTrip(req)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(req.Context())
	var deadline *time.Timer
	if within > 0 {
		deadline = time.AfterFunc(wait+within, cancel)
	}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if deadline != nil && !deadline.Stop() {
		cancel()
		if err == nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("long poll (wait=%s) not answered within %s more", wait, within)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	// The first request (no ETag yet: at start, the bundle to serve) is
	// not held; a server that answers every later one at once, 304 or a
	// 200 of the same bundle, is asked once a second.
	if rest := MinLongPoll - time.Since(start); rest > 0 && req.Header.Get("If-None-Match") != "" {
		select {
		case <-time.After(rest):
		case <-req.Context().Done():
			resp.Body.Close()
			cancel()
			return nil, req.Context().Err()
		}
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// preferWait is the wait=N (seconds) of OPA's Prefer header, 0 if none.
func preferWait(h http.Header) time.Duration {
	for _, part := range strings.Split(h.Get("Prefer"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "wait="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
