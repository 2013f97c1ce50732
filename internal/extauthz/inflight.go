package extauthz

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/listen"
)

// DefaultMaxRequestsInFlight is Config.MaxRequestsInFlight's default, the
// HTTP API's (internal/http.DefaultMaxRequestsInFlight): 256 calls, each
// at most 16 KiB of headers and a CheckRequest of --body-limit.
const DefaultMaxRequestsInFlight = 256

// acquire takes a place under the bound for the call of ctx, given back
// when ctx ends (the call ends, or its timeout passes); false, counted,
// when none is free, under the bound or in the call's client's share of it.
func acquire(ctx context.Context, places *listen.Places) bool {
	var remote net.Addr
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr
	}
	client, err := places.Take(remote)
	if err != nil {
		return false
	}
	context.AfterFunc(ctx, func() { places.Release(client) })
	return true
}

// refusedKey marks the context of a check refused at the bound: its
// handler answers it without reading its message (checkHandler).
type refusedKey struct{}

func refused(ctx context.Context) bool { return ctx.Value(refusedKey{}) != nil }

// errInFlight is the answer to a check refused at the bound. It is not
// logged (denied): a flood of them would be a flood of log lines.
var errInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is serving as many checks as it may at once (--max-requests-in-flight): try again shortly")

// errHealthInFlight is the answer to a health Check past the bound of
// health Checks (listen.HealthPlaces), or its client's share of it.
var errHealthInFlight = permatrix.Errorf(permatrix.EUNAVAILABLE,
	"the server is answering as many health checks as it may at once: try again shortly")
