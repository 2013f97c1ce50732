package extauthz

import (
	"context"
	"net"
	"sync/atomic"

	"google.golang.org/grpc/peer"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/listen"
)

// DefaultMaxRequestsInFlight is Config.MaxRequestsInFlight's default, the
// HTTP API's (internal/http.DefaultMaxRequestsInFlight): 256 calls, each
// at most 64 KiB of headers and a CheckRequest of --body-limit.
const DefaultMaxRequestsInFlight = 256

// Calls are the calls the listener serves at once and their bound: its
// connections times its streams were hundreds of thousands of calls, each
// holding its headers (a 64 KiB list HPACK fills from a byte a field) and
// its message as it came, for the check's timeout.
type Calls struct {
	max     int64
	now     atomic.Int64
	refused atomic.Uint64
	// shares bounds each client's part of max (with
	// --max-connections-per-client: listen.ShareOf), nil none; refusals
	// at it are counted apart.
	shares          *listen.Shares
	refusedByClient atomic.Uint64
}

// InFlight is the calls being served.
func (c *Calls) InFlight() int64 { return c.now.Load() }

// MaxInFlight is their bound.
func (c *Calls) MaxInFlight() int64 { return c.max }

// RefusedInFlight is the calls refused at the bound.
func (c *Calls) RefusedInFlight() uint64 { return c.refused.Load() }

// RefusedByClient is the calls refused at their client's share of the
// bound.
func (c *Calls) RefusedByClient() uint64 { return c.refusedByClient.Load() }

// acquire takes a place under the bound for the call of ctx, given back
// when ctx ends (the call ends, or its timeout passes); false, counted,
// when none is free, under the bound or in the call's client's share of it.
func (c *Calls) acquire(ctx context.Context) bool {
	for {
		n := c.now.Load()
		if n >= c.max {
			c.refused.Add(1)
			return false
		}
		if c.now.CompareAndSwap(n, n+1) {
			var remote net.Addr
			if p, ok := peer.FromContext(ctx); ok {
				remote = p.Addr
			}
			client, ok := c.shares.Take(remote)
			if !ok {
				c.now.Add(-1)
				c.refusedByClient.Add(1)
				return false
			}
			context.AfterFunc(ctx, func() { c.shares.Give(client); c.now.Add(-1) })
			return true
		}
	}
}

// refusedKey marks the context of a check refused at the bound: its
// handler answers it without reading its message (checkHandler).
type refusedKey struct{}

func refused(ctx context.Context) bool { return ctx.Value(refusedKey{}) != nil }

// errInFlight is the answer to a check refused at the bound. It is not
// logged (denied): a flood of them would be a flood of log lines.
var errInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is serving as many checks as it may at once (--max-requests-in-flight): try again shortly")
