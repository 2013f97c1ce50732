package listen

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
)

// Places bounds the requests (gRPC calls) a listener serves at once, over
// all its connections and HTTP/2 streams — the connection bound times the
// streams a connection may open was millions of requests, each holding its
// headers and its body for as long as its client took to send it — and,
// with Shares, each client's part of that bound. One owner for the HTTP
// API's bound and the gRPC listener's.
type Places struct {
	max                      int64
	now                      atomic.Int64
	refused, refusedByClient atomic.Uint64
	shares                   *Shares
}

// NewPlaces bounds a listener to max requests at once, each client to its
// share of them when clients are bounded (perClient > 0: ShareOf).
func NewPlaces(max, perClient int) *Places {
	return &Places{max: int64(max), shares: NewShares(ShareOf(max, perClient))}
}

// Why Take refused a place (counted apart).
var (
	ErrNoPlace     = errors.New("as many requests in flight as the bound allows")
	ErrClientShare = errors.New("the client holds its share of the bound")
)

// Take takes a place for a request of remote (nil: a client not counted),
// to give back with Release; ErrNoPlace or ErrClientShare, counted, when
// none is free.
func (p *Places) Take(remote net.Addr) (netip.Addr, error) {
	for {
		n := p.now.Load()
		if n >= p.max {
			p.refused.Add(1)
			return netip.Addr{}, ErrNoPlace
		}
		if p.now.CompareAndSwap(n, n+1) {
			break
		}
	}
	client, ok := p.shares.Take(remote)
	if !ok {
		p.now.Add(-1)
		p.refusedByClient.Add(1)
		return netip.Addr{}, ErrClientShare
	}
	return client, nil
}

// CountsClients reports whether Take counts each client's part (its
// remote is read only then).
func (p *Places) CountsClients() bool { return p.shares != nil }

// Release gives back a place Take took for client.
func (p *Places) Release(client netip.Addr) {
	p.shares.Give(client)
	p.now.Add(-1)
}

// InFlight is the requests being served.
func (p *Places) InFlight() int64 { return p.now.Load() }

// MaxInFlight is their bound.
func (p *Places) MaxInFlight() int64 { return p.max }

// RefusedInFlight is the requests refused at the bound.
func (p *Places) RefusedInFlight() uint64 { return p.refused.Load() }

// RefusedByClient is the requests refused at their client's share.
func (p *Places) RefusedByClient() uint64 { return p.refusedByClient.Load() }

// HealthPlaces bounds the health requests (GET /health, /health/live,
// /health/ready; grpc.health.v1 Check) a listener serves at once, apart
// from the decisions' bound: probes counted there were refused while
// decisions filled it, and Kubernetes restarted a sidecar that was only
// busy. 32: a pod's probers (the kubelet's startup, liveness and readiness
// probes, Envoy's and a load balancer's health checks, monitoring) send a
// few at a time, each answered in microseconds, so 32 at once is a flood
// or a client holding them; 32 held hold at most 32 head lists of 64 KiB
// (and over gRPC a message of --body-limit each), where unbounded they
// were as many as connections times streams.
const HealthPlaces = 32
