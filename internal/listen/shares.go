package listen

import (
	"net"
	"net/netip"
	"sync"
)

// Shares bounds what each client holds of a bound all clients share — the
// requests a listener serves at once (--max-requests-in-flight) — as
// Limited's perClient bounds its connections: a client (clientOf: an IPv4
// address, an IPv6 /64) holds at most Max places at once. Without it one
// client with a few HTTP/2 connections of slow bodies would hold every
// place of the shared bound and every other client's requests would be
// refused, though each client's connections are bounded. Loopback and
// unix socket clients are not counted, as Limited does not count them. A
// nil *Shares bounds nothing.
type Shares struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int // only clients holding places: at most the shared bound
}

// NewShares bounds each client to max places; nil (nothing bounded) for
// max ≤ 0.
func NewShares(max int) *Shares {
	if max <= 0 {
		return nil
	}
	return &Shares{max: max, n: map[netip.Addr]int{}}
}

// ShareOf is the share of a bound of shared places each client may hold
// when clients are bounded (perClient > 0, as --max-connections-per-client
// asks): a quarter of the shared bound, at least one; 0 (not bounded)
// when clients are not.
func ShareOf(shared, perClient int) int {
	if perClient <= 0 || shared <= 0 {
		return 0
	}
	return max(1, shared/4)
}

// Take takes one of remote's places: it answers the client to Give back
// and whether one was free (always, for a client not counted and for a
// nil Shares).
func (s *Shares) Take(remote net.Addr) (netip.Addr, bool) {
	if s == nil {
		return netip.Addr{}, true
	}
	client := clientOf(remote)
	if !client.IsValid() {
		return client, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[client] >= s.max {
		return netip.Addr{}, false
	}
	s.n[client]++
	return client, true
}

// Give gives back a place Take took for client.
func (s *Shares) Give(client netip.Addr) {
	if s == nil || !client.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[client]--; s.n[client] <= 0 {
		delete(s.n, client)
	}
}

// Held is the places client holds (for tests and metrics).
func (s *Shares) Held(remote net.Addr) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[clientOf(remote)]
}

// RemoteAddr is an http.Request's RemoteAddr ("ip:port") as the net.Addr
// Take counts; nil (not counted) when it is not one.
func RemoteAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
