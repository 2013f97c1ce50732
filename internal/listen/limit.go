package listen

import (
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/netutil"
)

// DefaultMaxConnections is the connections a listener holds open at once
// unless told otherwise (serve --max-connections).
const DefaultMaxConnections = 4096

// Limited is a listener that holds at most Max connections open at once
// (netutil.LimitListener): past it, Accept waits until one closes, and a
// new connection waits in the kernel's accept queue meanwhile — it is not
// refused, nor served. Each connection is a goroutine, buffers and a file
// descriptor for as long as the client keeps it (idle or slow ones too).
type Limited struct {
	net.Listener
	max  int
	open *atomic.Int64
}

// Limit bounds ln to max connections open at once (max < 1: the default).
func Limit(ln net.Listener, max int) *Limited {
	if max < 1 {
		max = DefaultMaxConnections
	}
	open := new(atomic.Int64)
	return &Limited{Listener: netutil.LimitListener(countingListener{ln, open}, max), max: max, open: open}
}

// Open is the number of connections open now.
func (l *Limited) Open() int64 { return l.open.Load() }

// Max is the bound.
func (l *Limited) Max() int { return l.max }

// countingListener counts its connections open in open.
type countingListener struct {
	net.Listener
	open *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countingConn{Conn: c, open: l.open}, nil
}

type countingConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countingConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.open.Add(-1) })
	return err
}
