package decisionlog

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
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

// WithRequest returns ctx carrying r, its headers held to what an entry
// may log (BoundHeader).
func WithRequest(ctx context.Context, r Request) context.Context {
	r.Header = BoundHeader(r.Header)
	return context.WithValue(ctx, requestKey{}, r)
}

// MaxLoggedHeader bounds the bytes of one header's values an entry logs
// (request_context.http.headers). Every decision's entry holds the
// request's headers, and a batch's thousand entries each hold them: a
// client's 60 KB X-Request-Id (the configuration's example names it) made
// one request of 138 KB write 61 MB to the decision log.
const MaxLoggedHeader = 1 << 10

// BoundHeader is h with each header's values held to MaxLoggedHeader bytes
// in all: the value that passes it cut there (at a UTF-8 boundary) and
// followed by "…(cut: N bytes)", N the bytes of every value the header
// had; values after it dropped. h itself when every header is within the
// bound (no copy: most requests). The mark is within the bound, so a
// header bounded is bounded again unchanged.
func BoundHeader(h http.Header) http.Header {
	over := false
	for _, vs := range h {
		if headerBytes(vs) > MaxLoggedHeader {
			over = true
			break
		}
	}
	if !over {
		return h
	}
	out := make(http.Header, len(h))
	for name, vs := range h {
		total := headerBytes(vs)
		if total <= MaxLoggedHeader {
			out[name] = vs
			continue
		}
		// The mark counts in the bound: a bounded header is bounded
		// again unchanged (a batch's request is carried twice).
		mark := "…(cut: " + strconv.Itoa(total) + " bytes)"
		var kept []string
		room := MaxLoggedHeader - len(mark)
		for _, v := range vs {
			if len(v) <= room {
				kept = append(kept, v)
				room -= len(v)
				continue
			}
			cut := room
			for cut > 0 && !utf8.RuneStart(v[cut]) {
				cut--
			}
			kept = append(kept, v[:cut]+mark)
			break
		}
		out[name] = kept
	}
	return out
}

func headerBytes(vs []string) int {
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	return n
}

// RequestFrom returns the request ctx carries (the zero Request if none).
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}
