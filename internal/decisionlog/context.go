package decisionlog

import (
	"context"
	"net/http"
	"sync/atomic"
)

// Request is what a decision's entry says about the request that asked
// for it: OPA's req_id, requested_by and request_context, and the batch it
// belongs to.
type Request struct {
	// ID numbers requests within the process (NextRequestID).
	ID uint64
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Header is the request's headers; only those decision_logs
	// request_context.http.headers names are logged.
	Header http.Header
	// BatchDecisionID is set for the checks of one batch.
	BatchDecisionID string
	// DecisionID, when set, is the id the decision is logged under (the
	// Data API's handler chooses it to answer with it).
	DecisionID string
}

type requestKey struct{}

var requests atomic.Uint64

// NextRequestID returns a new request number (1, 2, …).
func NextRequestID() uint64 { return requests.Add(1) }

// WithRequest returns ctx carrying r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request ctx carries (the zero Request if none).
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}
