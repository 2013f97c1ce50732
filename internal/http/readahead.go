package http

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// net/http cancels a request's context when its client closes the
// connection only once the handler has read the body to its end (it then
// watches the connection). An import reads its body a line at a time,
// and a gzip body's last compressed bytes when its last lines are
// decompressed: an import whose client had sent its whole body and left
// went on alone to its last line (a MB of gzip is up to 100 MB of lines,
// maxGzipRatio). Its body is read ahead, up to readAheadChunks of
// readAheadChunk bytes (1 MiB: --body-limit's default, what any request
// may hold), so that a body sent whole is read to its end at once, and a
// client that leaves ends the import at its next read (idleReader sees
// the context ended). A larger body is seen gone once what is left of it
// in the connection's buffers is read.
const (
	readAheadChunk  = 32 << 10
	readAheadChunks = 32
)

// readAheadKey is where the middleware leaves an import's readAhead for
// its handler (the body it reads may be the gzip reader over it).
const readAheadKey = "permatrix.readAhead"

// readAhead reads raw in a goroutine of its own, started by the first Read
// (a handler that answers without reading, such as a refusal for want of
// a token, leaves the body unread: a client expecting 100-continue is not
// asked for it), into a bounded queue of chunks; Read takes from the
// queue. stop ends the goroutine.
//
// It also owns the connection's read deadline while it reads: once the
// body has come to its end, net/http watches the connection with a read
// of its own, which a deadline passing would take for the client gone
// (the import's context cancelled in the middle of a long commit); so at
// the end the deadline is cleared, and extendRead no longer sets one.
type readAhead struct {
	raw    io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	start  sync.Once
	chunks chan []byte
	err    error // raw's error (io.EOF at the end), set before chunks is closed
	cur    []byte
	done   chan struct{} // closed by stop: no more chunks are queued
	exited chan struct{} // closed when the goroutine returns

	mu  sync.Mutex // the read deadline, and:
	end bool       // raw came to its end
}

func newReadAhead(raw io.ReadCloser, w http.ResponseWriter) *readAhead {
	return &readAhead{raw: raw, w: w, rc: http.NewResponseController(w), chunks: make(chan []byte, readAheadChunks),
		done: make(chan struct{}), exited: make(chan struct{})}
}

func (ra *readAhead) fill() {
	defer close(ra.exited)
	defer close(ra.chunks)
	for {
		buf := make([]byte, readAheadChunk)
		n, err := ra.raw.Read(buf)
		if err == io.EOF {
			ra.mu.Lock()
			ra.end = true
			_ = ra.rc.SetReadDeadline(time.Time{})
			ra.mu.Unlock()
		}
		if n > 0 {
			select {
			case ra.chunks <- buf[:n]:
			case <-ra.done:
				ra.err = io.ErrClosedPipe
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	ra.start.Do(func() { go ra.fill() })
	for len(ra.cur) == 0 {
		b, ok := <-ra.chunks
		if !ok {
			return 0, ra.err // written before chunks was closed
		}
		ra.cur = b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

func (ra *readAhead) Close() error { return ra.raw.Close() }

// extendRead moves the read deadline to d from now, while the body has
// not come to its end.
func (ra *readAhead) extendRead(d time.Duration) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if !ra.end {
		_ = ra.rc.SetReadDeadline(time.Now().Add(d))
	}
}

// stop ends the goroutine before the handler returns (net/http's body may
// not be read after): one still waiting for the client is woken by a read
// deadline of now. A body it began to read and did not read to its end —
// the import stopped at a line, or the read failed (its deadline passed:
// the client idle, a shutdown) — is left, and the connection closed after
// the answer (leaveBody); a body never read is net/http's to deal with.
func (ra *readAhead) stop() {
	started := true
	ra.start.Do(func() { started = false; close(ra.exited) })
	close(ra.done)
	if started {
		ra.mu.Lock()
		if !ra.end {
			leaveBody(ra.w)
		}
		ra.mu.Unlock()
	}
	<-ra.exited
}

// leaveBody leaves the rest of the request's body unread: it tells
// net/http so, as http.MaxBytesReader does past its limit ("it tells the
// ResponseWriter to close the connection after the limit has been
// reached"), and ends any wait for it (a read deadline of now). The
// connection is closed after the answer, and gracefully — half-closed,
// then fully after a delay (net/http's rstAvoidanceDelay) — so that a
// client still sending its body reads the answer before its writes are
// reset. A body ended by the read deadline alone had its connection closed
// at once: the client's next write met a reset, and Go's client, writing
// its body when it came, reported that instead of the answer. Told only
// Connection: close, net/http read up to 256 KiB more of it before it
// closed, waiting on the client as long as the read timeout.
func leaveBody(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
	_ = rc.SetReadDeadline(time.Now())
}

// readAheadOf is the request's readAhead, nil when it has none.
func readAheadOf(c echo.Context) *readAhead {
	ra, _ := c.Get(readAheadKey).(*readAhead)
	return ra
}
