package extauthz_test

import (
	"net"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/test/harness"
)

// TestCallsInFlightSharedByClients: with MaxConnectionsPerClient, one
// client's calls hold at most a quarter of MaxRequestsInFlight: a client
// of one connection of 100 streams, each waiting for its message, had
// every place of the bound, and every other client's checks were refused.
func TestCallsInFlightSharedByClients(t *testing.T) {
	ip := nonLoopbackIP(t) // loopback clients are not bounded
	const bound, share = 8, 2
	s := harness.Start(t, harness.Options{})
	srv := extauthz.New(extauthz.Config{Gateway: &gateway.Gateway{Identity: identity.Default()}, Decide: s.HTTP.Decide,
		ErrorJSON: permhttp.ErrorJSON, MaxRequestsInFlight: bound, MaxConnectionsPerClient: 100,
		Timeout: 2 * time.Minute})
	addr, err := srv.Listen(net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, stop(srv))
	settled := make(chan struct{}, 1000)
	f := dialGRPCFlood(t, addr.String(), settled)
	f.open(t)
	<-f.pinged
	total := int(f.streams)
	guard := time.After(10 * time.Second)
	refused := 0
wait:
	for refused < total-share {
		select {
		case <-settled:
			refused++
		case <-guard:
			break wait
		}
	}
	if refused != total-share {
		t.Errorf("%d of %d calls ended, want all but the client's share, %d", refused, total, share)
	}
	if n := srv.Requests().InFlight(); n != share {
		t.Errorf("%d calls in flight, want the share, %d", n, share)
	}
	if n := srv.Requests().RefusedByClient(); n != uint64(total-share) {
		t.Errorf("%d refused at the client's share, want %d", n, total-share)
	}
	if n := srv.Requests().RefusedInFlight(); n != 0 {
		t.Errorf("%d refused at the bound, want 0", n)
	}
}
