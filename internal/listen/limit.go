package listen

import (
	"container/list"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnections is the connections a listener holds open at once
// unless told otherwise (serve --max-connections).
const DefaultMaxConnections = 4096

// flushGrace is how long a connection gone idle with the end of its last
// answer maybe still in its server's buffer (Idle's flushing) is kept from
// being closed to make room, if it writes nothing more: its server had
// nothing left to write (a stream its client reset), not one slow to.
// It writes, and it is idle at once.
const flushGrace = time.Second

// Limited is a listener that holds at most Max connections open at once.
// Each connection is a goroutine, buffers and a file descriptor for as
// long as the client keeps it, so the bound is what bounds them; but
// connections that are idle between requests must not keep a client that
// has one out: a client could fill the bound with kept-alive connections
// and leave them idle for the whole idle timeout. So, as nginx and Envoy
// do, past the bound the connection that has been idle the longest is
// closed to make room. Which connections are idle the server says
// (ConnState, an http.Server's hook, which Track sets; Idle for other
// servers); a connection it has not called idle (a new one, one with a
// request in progress, a hijacked one) is never closed, nor one whose
// last answer may still be in its server's buffer (an HTTP/2 one whose
// last stream just closed) until it writes it. With none idle, the connection past the bound is accepted but
// not served until one closes or goes idle, and the ones after it wait in
// the kernel's accept queue meanwhile: refused, they would not retry.
//
// Busy connections hold their slots, and a client that opens them faster
// than they end (slow heads, slow bodies, reconnecting as each is closed)
// could hold them all; so, as nginx's limit_conn, a client may also be
// bounded to perClient connections (0: not). A client is an IPv4 address
// or an IPv6 /64 (clientOf); loopback and unix socket clients are not
// bounded. At its bound, a client's own connection idle the longest
// makes room for its new one; with none of its own idle, the new one is
// closed at once (Refused): made to wait, it would keep every other
// client's connection behind it in the accept queue.
type Limited struct {
	net.Listener
	max       int
	perClient int

	mu      sync.Mutex
	open    int
	idle    list.List          // of *limitedConn, idle the longest first
	clients map[netip.Addr]int // open connections of each bounded client
	evicted int64              // idle connections closed to make room
	refused int64              // connections closed at once, their client at its bound
	changed chan struct{}      // closed when a slot frees or a connection goes idle, if an Accept waits
	done    chan struct{}      // closed by Close
	close   sync.Once

	flushGrace time.Duration // flushGrace; tests change it
}

// Limit bounds ln to max connections open at once (max < 1: the default),
// and each client to perClient of them (perClient < 1: no per-client
// bound).
func Limit(ln net.Listener, max, perClient int) *Limited {
	if max < 1 {
		max = DefaultMaxConnections
	}
	if perClient < 0 {
		perClient = 0
	}
	return &Limited{Listener: ln, max: max, perClient: perClient, done: make(chan struct{}), flushGrace: flushGrace}
}

// Open is the number of connections open now (an evicted one no longer
// counts from the moment it is closed to make room).
func (l *Limited) Open() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.open)
}

// Max is the bound.
func (l *Limited) Max() int { return l.max }

// MaxPerClient is the bound of each client, 0 if none.
func (l *Limited) MaxPerClient() int { return l.perClient }

// Refused is the number of connections closed at once, their client at
// its bound with none of its connections idle.
func (l *Limited) Refused() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// Evicted is the number of idle connections closed to make room.
func (l *Limited) Evicted() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

// Accept accepts a connection and gives it a slot: a free one, or the one
// of the connection idle the longest, which it closes; with neither it
// waits for one. A connection whose client is at its bound takes the
// slot of that client's connection idle the longest, or is closed at
// once, and the next one is accepted.
func (l *Limited) Accept() (net.Conn, error) {
	var c net.Conn
	var client netip.Addr
	for c == nil {
		var err error
		if c, err = l.Listener.Accept(); err != nil {
			return nil, err
		}
		if l.perClient > 0 {
			client = clientOf(c.RemoteAddr())
		}
		if !l.admit(client) {
			refuse(c)
			c = nil
		}
	}
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			lc := &limitedConn{Conn: c, l: l, client: client}
			if client.IsValid() {
				l.clients[client]++
			}
			l.mu.Unlock()
			return lc, nil
		}
		victim, wait := l.victim(time.Now(), netip.Addr{})
		if victim != nil {
			l.evict(victim)
			l.mu.Unlock()
			// Its server's read fails and it closes it again: a no-op
			// for the count, released above.
			_ = victim.Conn.Close()
			continue
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		var grace *time.Timer
		var graced <-chan time.Time
		if wait > 0 {
			grace = time.NewTimer(wait)
			graced = grace.C
		}
		closed := false
		select {
		case <-changed:
		case <-graced:
		case <-l.done:
			closed = true
		}
		if grace != nil {
			grace.Stop()
		}
		if closed {
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// admit says whether a connection of client (the zero Addr: not bounded)
// may have a slot: it is not bounded, or under its bound, or at it with a
// connection idle, which is closed to make room (as at the listener's
// bound, not one whose answer may still be in its server's buffer). The
// count is taken when the slot is (Accept), so admit and that are one
// step for servers that accept one connection at a time, as net/http's
// and gRPC's do.
func (l *Limited) admit(client netip.Addr) bool {
	if !client.IsValid() {
		return true
	}
	l.mu.Lock()
	if l.clients == nil {
		l.clients = make(map[netip.Addr]int)
	}
	if l.clients[client] < l.perClient {
		l.mu.Unlock()
		return true
	}
	victim, _ := l.victim(time.Now(), client)
	if victim == nil {
		l.refused++
		l.mu.Unlock()
		return false
	}
	l.evict(victim)
	l.mu.Unlock()
	_ = victim.Conn.Close()
	return true
}

// refuse closes c, accepted past its client's bound, with a reset (no
// linger): its client learns at once, and the socket leaves nothing behind
// (no TIME_WAIT) however often a client reconnects.
func refuse(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// evict takes victim, idle, out of l to make room; the caller closes it
// once l.mu is released. l.mu is held.
func (l *Limited) evict(victim *limitedConn) {
	l.idle.Remove(victim.elem)
	victim.elem = nil
	victim.evicted = true
	l.drop(victim)
	l.evicted++
}

// victim is the idle connection to close to make room: the one idle the
// longest of those whose last answer is out, or failing those, of those
// idle for flushGrace; nil if none, and then wait, if not 0, is when one
// will be. With client valid, only that client's connections are
// considered. l.mu is held.
func (l *Limited) victim(now time.Time, client netip.Addr) (victim *limitedConn, wait time.Duration) {
	var flushing *limitedConn
	for e := l.idle.Front(); e != nil; e = e.Next() {
		c := e.Value.(*limitedConn)
		if client.IsValid() && c.client != client {
			continue
		}
		if !c.flushing.Load() {
			return c, 0
		}
		if flushing == nil {
			flushing = c
		}
	}
	if flushing == nil {
		return nil, 0
	}
	if wait := flushing.idleAt.Add(l.flushGrace).Sub(now); wait > 0 {
		return nil, wait
	}
	return flushing, 0
}

// Waiting says whether a connection past the bound waits for a slot.
func (l *Limited) Waiting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed != nil
}

// Close stops accepting; an Accept waiting for a slot returns.
func (l *Limited) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Track has srv tell l which of its connections are idle (ConnState) and
// serve no request of a connection closed to make room. A connection the
// server calls idle may hold its next request already: read with the one
// before it (pipelined), or its head read just as the connection is
// closed. The server then starts that request on the closed connection,
// and its client, which sees the connection close and no answer, would
// not know it was carried out (a write made, or not). Such a request is
// not served. It is exact: the server calls the connection active before
// it serves the request, and an active connection is never closed.
// Call it once srv's Handler is set, before srv serves.
func (l *Limited) Track(srv *http.Server) {
	state, connCtx, h := srv.ConnState, srv.ConnContext, srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		l.ConnState(c, s)
		if state != nil {
			state(c, s)
		}
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connCtx != nil {
			ctx = connCtx(ctx, c)
		}
		if lc := l.own(c); lc != nil {
			ctx = context.WithValue(ctx, limitedConnKey{}, lc)
		}
		return ctx
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(limitedConnKey{}).(*limitedConn); ok && l.closedToMakeRoom(lc) {
			return // its answer has nowhere to go
		}
		h.ServeHTTP(w, r)
	})
}

// ClosedToMakeRoom says whether c, l's connection or one wrapping it, was
// closed to make room: for servers without Track (gRPC) to serve no call
// of a connection closed before the call began — asked once the server
// has called the connection busy, it is exact.
func (l *Limited) ClosedToMakeRoom(c net.Conn) bool {
	lc := l.own(c)
	return lc != nil && l.closedToMakeRoom(lc)
}

// limitedConnKey is the request context's key of its *limitedConn (Track).
type limitedConnKey struct{}

// closedToMakeRoom says whether c was closed to make room.
func (l *Limited) closedToMakeRoom(c *limitedConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return c.evicted
}

// ConnState is an http.Server's ConnState hook for the connections it
// serves from l: it learns from it which are idle (between requests, or an
// HTTP/2 connection without a stream open), and so may be closed to make
// room. A connection another listener accepted is ignored.
func (l *Limited) ConnState(c net.Conn, state http.ConnState) {
	lc := l.own(c)
	if lc == nil {
		return
	}
	switch state {
	case http.StateIdle:
		// An HTTP/2 server (x/net's) calls a connection idle as its last
		// stream closes, the stream's last frame written into its buffer
		// and not yet flushed: closed then, the answer of a request served
		// would be lost.
		tc, ok := c.(*tls.Conn)
		l.setIdle(lc, true, ok && tc.ConnectionState().NegotiatedProtocol == "h2")
	case http.StateActive, http.StateHijacked:
		l.setIdle(lc, false, false)
	}
}

// Idle tells l that c, its connection or one wrapping it, is idle: no
// request open on it. flushing: its server may still hold the end of its
// last answer in a buffer, which it writes soon — c is then not closed to
// make room until it writes again (or, writing nothing, for flushGrace).
// ConnState calls it for an http.Server's connections; servers without
// that hook (gRPC) call it and ConnState(c, http.StateActive).
func (l *Limited) Idle(c net.Conn, flushing bool) {
	if lc := l.own(c); lc != nil {
		l.setIdle(lc, true, flushing)
	}
}

// own is l's connection that c is or wraps (a tls.Conn, or any wrapper
// with NetConn), nil if none.
func (l *Limited) own(c net.Conn) *limitedConn {
	for c != nil {
		if lc, ok := c.(*limitedConn); ok {
			if lc.l != l {
				return nil
			}
			return lc
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = w.NetConn()
	}
	return nil
}

func (l *Limited) setIdle(c *limitedConn, idle, flushing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case c.released:
	case idle && c.elem == nil:
		c.elem = l.idle.PushBack(c)
		c.idleAt = time.Now()
		c.flushing.Store(flushing)
		l.signal()
	case !idle && c.elem != nil:
		l.idle.Remove(c.elem)
		c.elem = nil
		c.flushing.Store(false)
	}
}

// flushed records that c, idle with its last answer maybe not out, wrote:
// what its server held went out with it (or before).
func (l *Limited) flushed(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.flushing.Swap(false) {
		l.signal()
	}
}

// release gives c's slot back, once.
func (l *Limited) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	l.drop(c)
	l.signal()
}

// drop takes c's slot back; l.mu is held.
func (l *Limited) drop(c *limitedConn) {
	c.released = true
	l.open--
	if c.client.IsValid() {
		if l.clients[c.client]--; l.clients[c.client] <= 0 {
			delete(l.clients, c.client)
		}
	}
}

// clientOf is the client a per-client bound counts remote as: its IPv4
// address, or the /64 of its IPv6 address — a host is given a /64 and may
// take any address in it (SLAAC's temporary addresses do), so counted by
// address one host would be 2^64 clients. The zero Addr (not bounded) for
// a loopback address (the sidecar's own pod or host: its Envoy and app,
// which are expected to hold many connections; and a local process can
// send from any of 127/8) and for a unix socket's, which have none.
func clientOf(remote net.Addr) netip.Addr {
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Addr{}
	}
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.IsLoopback():
		return netip.Addr{}
	case ip.Is4():
		return ip
	}
	return netip.PrefixFrom(ip, 64).Masked().Addr()
}

// signal wakes an Accept waiting for a slot; l.mu is held.
func (l *Limited) signal() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// limitedConn is a connection holding one of l's slots until it closes
// or, idle, is closed to make room.
type limitedConn struct {
	net.Conn
	l        *Limited
	elem     *list.Element // in l.idle while idle; l.mu guards it
	released bool          // its slot given back; l.mu guards it
	evicted  bool          // closed to make room; l.mu guards it
	idleAt   time.Time     // when it went idle; l.mu guards it
	// flushing: idle, the end of its last answer maybe still in its
	// server's buffer (Idle); set under l.mu, read by Write without it.
	flushing atomic.Bool
	client   netip.Addr // the client a per-client bound counts it to; zero if none
}

func (c *limitedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.flushing.Load() {
		c.l.flushed(c)
	}
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.release(c)
	return err
}

// CloseWrite half-closes the connection, as net/http does before it
// closes one whose request body it left unread: its answer is followed by
// the end of the stream (FIN), which the client reads before the reset
// the full close sends. Without it, net/http's graceful close was a wait
// and a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn is the accepted connection.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
