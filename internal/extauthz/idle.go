package extauthz

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/permatrix/permatrix/internal/listen"
)

// idleTracker tells the listener which of its connections have no call
// open, as an http.Server's ConnState hook tells the HTTP listeners: at
// its bound the listener closes the one idle the longest to make room
// (listen.Limited), so that connections left open without calls cannot
// keep Envoy's new connections out. gRPC's stats handlers see a
// connection's calls begin and end, and name the connection only by its
// addresses, which a unix socket's connections lack (its clients have
// none); the connection itself is in its peer's AuthInfo (connCreds).
type idleTracker struct {
	ln func() *listen.Limited
}

// connCreds are the server's transport credentials, but that each
// connection's AuthInfo also holds the connection as the listener
// accepted it (connInfo): gRPC puts the AuthInfo in the context its stats
// handler sees, the only thing of a connection's own it has there.
type connCreds struct {
	credentials.TransportCredentials
}

func (c connCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	return conn, connInfo{AuthInfo: info, conn: raw}, nil
}

func (c connCreds) Clone() credentials.TransportCredentials {
	return connCreds{c.TransportCredentials.Clone()}
}

// connInfo is a connection's AuthInfo (its credentials', the TLS state
// for TLS: read it from AuthInfo) and the connection, as accepted.
type connInfo struct {
	credentials.AuthInfo
	conn net.Conn
}

// GetCommonAuthInfo is the credentials' own: gRPC reads the security
// level from it.
func (i connInfo) GetCommonAuthInfo() credentials.CommonAuthInfo {
	if c, ok := i.AuthInfo.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	}); ok {
		return c.GetCommonAuthInfo()
	}
	return credentials.CommonAuthInfo{}
}

type trackedConnKey struct{}

// trackedConn counts a connection's calls open.
type trackedConn struct {
	ln    *listen.Limited
	conn  net.Conn
	mu    sync.Mutex
	calls int
}

// add counts a call beginning (+1) or ending (-1), or none (0: the
// connection set up), and tells the listener when the connection goes
// busy or idle.
func (c *trackedConn) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls += n
	switch {
	case c.calls == 0:
		// A call ended: its answer handed to gRPC's writer, which may
		// not have written it yet — closed to make room now, the
		// connection would take it along. It is closed once it writes
		// again (listen.Limited.Idle).
		c.ln.Idle(c.conn, n < 0)
		if f := testHookCallsEnded.Load(); n < 0 && f != nil {
			(*f)()
		}
	case c.calls == 1 && n > 0:
		c.ln.ConnState(c.conn, http.StateActive)
	}
}

// testHookCallsEnded, set by tests only, runs once a connection's last
// call has ended, as it is told idle. Atomic: a test sets and clears it
// while its server's goroutines read it (a call ends after its answer).
var testHookCallsEnded atomic.Pointer[func()]

// testHookCallBegins, set by tests only, runs as a call begins, before
// its connection is told busy.
var testHookCallBegins atomic.Pointer[func()]

// TagConn finds the connection in its peer's AuthInfo (connCreds): gRPC
// puts the peer in the context before it tags the connection.
func (t idleTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	ln := t.ln()
	p, ok := peer.FromContext(ctx)
	if ln == nil || !ok {
		return ctx
	}
	info, ok := p.AuthInfo.(connInfo)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, trackedConnKey{}, &trackedConn{ln: ln, conn: info.conn})
}

func (idleTracker) HandleConn(ctx context.Context, s stats.ConnStats) {
	// Set up (handshake and preface done) with no call yet: idle.
	if c, ok := ctx.Value(trackedConnKey{}).(*trackedConn); ok {
		if _, begins := s.(*stats.ConnBegin); begins {
			c.add(0)
		}
	}
}

func (idleTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC sees every call of the connection begin and end, once each
// (grpc.Server.processRPC), in the call's context, which is the
// connection's.
func (idleTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	c, ok := ctx.Value(trackedConnKey{}).(*trackedConn)
	if !ok {
		return
	}
	switch s.(type) {
	case *stats.Begin:
		if f := testHookCallBegins.Load(); f != nil {
			(*f)()
		}
		c.add(1)
	case *stats.End:
		c.add(-1)
	}
}

// closedToMakeRoom says whether the connection of the call of ctx was
// closed to make room before the call began (it was idle until then): its
// answer has nowhere to go, and the check is not decided — nor logged as
// a decision Envoy never received.
func closedToMakeRoom(ctx context.Context) bool {
	c, ok := ctx.Value(trackedConnKey{}).(*trackedConn)
	return ok && c.ln.ClosedToMakeRoom(c.conn)
}
