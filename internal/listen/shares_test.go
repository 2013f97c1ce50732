package listen_test

import (
	"net"
	"testing"

	"github.com/permatrix/permatrix/internal/listen"
)

// TestSharesBoundEachClient: a client holds at most its share of a shared
// bound, counted as the connection bound counts clients (an IPv4 address,
// an IPv6 /64, IPv4-mapped as IPv4; loopback and unix sockets not
// counted), and a place given back is free again.
func TestSharesBoundEachClient(t *testing.T) {
	s := listen.NewShares(2)
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1234} }
	a1, ok1 := s.Take(tcp("192.0.2.1"))
	_, ok2 := s.Take(tcp("::ffff:192.0.2.1"))
	if !ok1 || !ok2 {
		t.Fatal("a client's first two places refused")
	}
	if _, ok := s.Take(tcp("192.0.2.1")); ok {
		t.Error("a third place of 192.0.2.1 (the third by its IPv4-mapped address) taken, want refused")
	}
	if _, ok := s.Take(tcp("192.0.2.2")); !ok {
		t.Error("another client refused")
	}
	v6a, _ := s.Take(tcp("2001:db8::1"))
	if _, ok := s.Take(tcp("2001:db8::ffff:2")); !ok {
		t.Error("the /64's second place refused")
	}
	if _, ok := s.Take(tcp("2001:db8::3")); ok {
		t.Error("a third place of one /64 taken, want refused")
	}
	if _, ok := s.Take(tcp("2001:db8:0:1::1")); !ok {
		t.Error("another /64 refused")
	}
	for range 10 {
		if _, ok := s.Take(tcp("127.0.0.1")); !ok {
			t.Fatal("loopback refused: it is not counted")
		}
		if _, ok := s.Take(&net.UnixAddr{Name: "@", Net: "unix"}); !ok {
			t.Fatal("a unix socket's client refused: it is not counted")
		}
	}
	s.Give(a1)
	if _, ok := s.Take(tcp("192.0.2.1")); !ok {
		t.Error("a place given back is not free again")
	}
	s.Give(v6a)
	if n := s.Held(tcp("2001:db8::9")); n != 1 {
		t.Errorf("the /64 holds %d places, want 1", n)
	}
	if s := listen.NewShares(0); s != nil {
		t.Error("NewShares(0) bounds something")
	}
	var none *listen.Shares
	if _, ok := none.Take(tcp("192.0.2.1")); !ok {
		t.Error("a nil Shares refused")
	}
	if got := listen.ShareOf(256, 0); got != 0 {
		t.Errorf("ShareOf without a per-client bound = %d, want 0", got)
	}
	if got := listen.ShareOf(256, 8); got != 64 {
		t.Errorf("ShareOf(256, 8) = %d, want 64", got)
	}
	if got := listen.ShareOf(2, 8); got != 1 {
		t.Errorf("ShareOf(2, 8) = %d, want 1", got)
	}
}
