package etcd

import (
	"errors"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// etcd's limits on one transaction. A commit is one etcd transaction (see
// Commit): its compares are the guards of the units the batch read, its
// success branch the batch's operations and a put of the guard of every
// unit they write, its failure branch a get of each guard read. etcd refuses
// a transaction whose largest branch (or compare list) has more than
// --max-txn-ops entries, or whose raft request is over --max-request-bytes;
// the gRPC server refuses any request over --max-request-bytes plus 512 KiB
// before reading it, the client any over its MaxCallSendMsgSize.
//
// The store holds a batch to the limits it is given (Options.MaxTxnOps,
// MaxRequestBytes, which mirror the cluster's): Fits is what the write
// protocol plans against, and Commit refuses a batch that does not fit
// before sending it. The number of units read never makes a batch too
// large: past the ops limit, Commit guards them by fewer, shallower units
// (fewerGuards).

// grpcOverhead is what etcd's gRPC server takes beyond --max-request-bytes
// (etcd's grpcOverheadBytes); the client is given the same allowance.
const grpcOverhead = 512 * 1024

// Upper bounds of the protobuf bytes around each entry of the transaction
// (tags and length varints of the entry, its request and its fields; a
// compare's target and result, and its revision as a 10-byte varint), and
// around the transaction (the raft request's header: id, user name, auth
// revision).
const (
	opOverhead  = 24
	cmpOverhead = 32
	txnOverhead = 256
)

// MaxOps is the most key operations a commit can hold: --max-txn-ops.
func (s *Store) MaxOps() int { return s.opts.MaxTxnOps }

// txnOps is how many entries the transaction's largest branch has (reads
// are guarded by at most MaxTxnOps units, see fewerGuards).
func (s *Store) txnOps(z store.Size) int {
	return max(z.Ops+z.Writes, min(z.Reads, s.guardLimit())+s.markEntries())
}

// markEntries is the entries of each branch but the success one that hold
// a commit to a prefix no store copy marked (copymark.go): a compare and
// a read of the mark; in the copy's own commits, of its copy lock and of
// the mark (which they require present).
func (s *Store) markEntries() int {
	if s.opts.CopyTarget {
		return 2
	}
	return 1
}

// markKeyBytes bounds each key markEntries compare and read: the mark's,
// or the copy lock's (its mutex prefix, "/" and a lease id in hex).
func (s *Store) markKeyBytes() int {
	if s.opts.CopyTarget {
		return max(len(s.copyLockPrefix())+1+16, len(s.copyKey()))
	}
	return len(s.copyKey())
}

// guardLimit is the most guards a commit compares: --max-txn-ops less the
// mark's compare (at least one).
func (s *Store) guardLimit() int { return max(1, s.opts.MaxTxnOps-s.markEntries()) }

// txnBytes bounds from above the size of the raft request of a commit of
// size z. Its reads become at most MaxTxnOps guards (fewerGuards), each a
// prefix of a different unit read: their bytes are at most the units'.
func (s *Store) txnBytes(z store.Size) int {
	key := len(s.prefix) + len("k/")
	guards := min(z.Reads, s.guardLimit())
	mark := s.markEntries() * (2*s.markKeyBytes() + cmpOverhead + opOverhead)
	return txnOverhead + len(s.opts.Username) + mark +
		z.OpBytes + z.Ops*(key+opOverhead) +
		z.WriteBytes + z.Writes*(key+opOverhead) +
		2*(z.ReadBytes+guards*key) + guards*(cmpOverhead+opOverhead)
}

// Fits is nil if a commit of size z fits the transaction limits; else it
// says which it passes (ETOOLARGE).
func (s *Store) Fits(z store.Size) error {
	if n := s.txnOps(z); n > s.opts.MaxTxnOps {
		return permatrix.Errorf(permatrix.ETOOLARGE,
			"the etcd transaction for this write would have %d operations (%d key operations and %d guards), over the cluster's --max-txn-ops of %d (as --etcd-max-txn-ops says): nothing was written; raise etcd's --max-txn-ops and --etcd-max-txn-ops with it",
			n, z.Ops, z.Writes, s.opts.MaxTxnOps)
	}
	if n := s.txnBytes(z); n > s.opts.MaxRequestBytes {
		return permatrix.Errorf(permatrix.ETOOLARGE,
			"the etcd transaction for this write would take up to %d bytes, over the cluster's --max-request-bytes of %d (as --etcd-max-request-bytes says): nothing was written; raise etcd's --max-request-bytes and --etcd-max-request-bytes with it",
			n, s.opts.MaxRequestBytes)
	}
	return nil
}

// refused says what it means when etcd (or the client) refused a
// transaction of size z for its size, or returns nil for another error.
// This happens only when the cluster's limits are below the ones the store
// was given: Fits let the batch through.
func (s *Store) refused(err error, z store.Size) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return permatrix.Errorf(permatrix.ETOOLARGE,
			"etcd refused the transaction for this write (%d operations) as over its --max-txn-ops, which is below this sidecar's --etcd-max-txn-ops of %d: nothing was written; set --etcd-max-txn-ops to the cluster's --max-txn-ops",
			s.txnOps(z), s.opts.MaxTxnOps)
	case errors.Is(err, rpctypes.ErrRequestTooLarge), status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "larger than max"):
		// etcd's ErrRequestTooLarge; etcd's gRPC server ("received
		// message larger than max") or the client ("trying to send message
		// larger than max") refusing the request unread.
		return permatrix.Errorf(permatrix.ETOOLARGE,
			"etcd refused the transaction for this write (up to %d bytes) as over its --max-request-bytes, which is below this sidecar's --etcd-max-request-bytes of %d: nothing was written; set --etcd-max-request-bytes to the cluster's --max-request-bytes",
			s.txnBytes(z), s.opts.MaxRequestBytes)
	}
	return nil
}

// fewerGuards returns units, or — when there are more than n — at most n
// units that guard everything they do: a unit is replaced by its parent
// (one segment less), which every commit that changes the unit writes too
// (store.WriteUnits bumps a key's unit and every shallower prefix). A
// guard that covers more than was read only refuses more: a commit after a
// write near what was read is retried on a newer snapshot, never made on a
// stale one. Parents that cover the most units are taken first.
func fewerGuards(units [][]byte, n int) [][]byte {
	if len(units) <= n {
		return units
	}
	set := make(map[string]struct{}, len(units))
	for _, u := range units {
		set[string(u)] = struct{}{}
	}
	dropCovered(set)
	for len(set) > n {
		// The parent with the most units below it; among equals the
		// deepest (the narrowest guard).
		below := map[string]int{}
		for u := range set {
			if p, ok := parent(u); ok {
				below[p]++
			}
		}
		best, most := "", 0
		for p, c := range below {
			if c > most || c == most && (len(p) > len(best) || len(p) == len(best) && p < best) {
				best, most = p, c
			}
		}
		if most == 1 {
			// No two units share a parent: lift the deepest one, so that
			// it meets the others higher up.
			deepest, depth := "", -1
			for u := range set {
				if d := strings.Count(u, "\x00"); u != "" && (d > depth || d == depth && u < deepest) {
					deepest, depth = u, d
				}
			}
			best, _ = parent(deepest)
		}
		set[best] = struct{}{}
		dropCovered(set)
	}
	out := make([][]byte, 0, len(set))
	for u := range set {
		out = append(out, []byte(u))
	}
	return out
}

// parent is a unit without its last segment; the root ("") has none.
func parent(u string) (string, bool) {
	if u == "" {
		return "", false
	}
	i := strings.LastIndexByte(u, 0)
	if i < 0 {
		return "", true
	}
	return u[:i], true
}

// dropCovered removes every unit below another unit of the set.
func dropCovered(set map[string]struct{}) {
	for u := range set {
		for p, ok := parent(u); ok; p, ok = parent(p) {
			if _, has := set[p]; has {
				delete(set, u)
				break
			}
		}
	}
}
