package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// A fleet reads every key of its layout under its prefix as its own: the
// watch from "k/" to the prefix's end, the resync the "k/" range, a copy's
// clearing every data key. Two fleets whose prefixes nest (/p/ and /p/k/)
// read, and a copy deletes, each other's keys. So serve claims its prefix
// (ClaimPrefix) before it serves, and store copy its etcd target before
// it locks it: refused if a fleet is found at a
// prefix containing its own — its marker (<prefix>m/fleet, which every
// claim puts), or its root guard (a fleet of an earlier release, which puts
// no marker, once it has committed) — or if its own range holds a key that
// is not of its layout (a fleet inside it, or a key put by something
// else). Its range is read where its own keys are not (ownGaps), each gap
// with limit 1: 18 reads, in one transaction within etcd's default
// --max-txn-ops, whatever the prefix holds.
// Then it puts its marker, if absent, requiring the containing prefixes'
// markers absent, and reads its range again if it put it (ClaimPrefix:
// of two claims of nested prefixes racing, one loses).

// fleetMarkName is the fleet's marker, under its prefix.
const fleetMarkName = "m/fleet"

// NestedPrefixError is a store's prefix nested with another fleet's: the
// other's prefix contains this one (Inside), or this one holds a key not
// of its layout (a fleet inside it: Other, if the key names it). It
// unwraps to an EINVALID *permatrix.Error.
type NestedPrefixError struct {
	Prefix string // this store's
	Other  string // the other fleet's prefix ("": not known)
	Key    string // the key that shows it
	Inside bool   // Prefix is inside Other
	err    *permatrix.Error
}

func (e *NestedPrefixError) Error() string { return e.err.Error() }
func (e *NestedPrefixError) Unwrap() error { return e.err }

const nestedFix = "two fleets whose prefixes nest read, and a store copy with --force deletes, each other's keys: give each fleet a prefix of its own, neither inside the other (docs/fleet.md)"

// ClaimPrefix refuses the store's prefix if it is nested with another
// fleet's (a *NestedPrefixError), else puts the fleet's marker, if absent.
// Any other error says the check was not made (etcd not reached, a read
// refused): nothing was put — but for the second read below, not
// answered, after which the marker stays.
//
// Two claims of nested prefixes racing each read the other's place before
// the other's marker is there. So the marker is put in a transaction that
// requires the markers of the containing prefixes absent (the outer
// one's marker, put first, makes the inner claim fail), and a
// claim that put its marker reads its own range once more (the inner
// one's marker, put first, is found there): one of the two loses, and
// takes back the marker it put. So does a claim that finds its marker
// put since it read its range (another sidecar of its fleet, claiming at
// the same moment, may yet lose so).
func (s *Store) ClaimPrefix(ctx context.Context) error {
	if err := s.inCopyLock(); err != nil {
		return err
	}
	if err := s.awaitCheck(ctx); err != nil {
		return err
	}
	outers, err := s.checkOuter(ctx)
	if err != nil {
		return err
	}
	readAt, err := s.checkInner(ctx)
	if err != nil {
		return err
	}
	mark := s.prefix + fleetMarkName
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(mark), "=", 0)}
	// Its own marker first, then the containing prefixes' (if the marker
	// is not put: which was there).
	found := []clientv3.Op{clientv3.OpGet(mark, clientv3.WithKeysOnly())}
	// The markers of the containing prefixes it could read, the nearest
	// first, as many as the cluster's --max-txn-ops lets one transaction
	// compare (a prefix of more names than that races its farthest
	// ones as before).
	for i := len(outers) - 1; i >= 0 && len(cmps) < s.opts.MaxTxnOps; i-- {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(outers[i]+fleetMarkName), "=", 0))
		found = append(found, clientv3.OpGet(outers[i]+fleetMarkName, clientv3.WithKeysOnly()))
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(clientv3.OpPut(mark, s.prefix)).Else(found...).Commit()
	cancel()
	if err != nil {
		return fmt.Errorf("putting the fleet's marker %s: %w", mark, err)
	}
	if !resp.Succeeded {
		for i, r := range resp.Responses[1:] {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				return s.insideError(outers[len(outers)-1-i], string(kvs[0].Key), false)
			}
		}
		// Its marker was there. Put before its range was read (a
		// restart): a fleet inside claiming since would have found it,
		// and the read found none before. Put since, by another sidecar
		// of this fleet starting at the same moment, whose claim may yet
		// lose to a fleet inside that claimed meanwhile (and take the
		// marker back): read again, as that sidecar does.
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 && kvs[0].CreateRevision <= readAt {
			return nil
		}
		_, err := s.checkInner(ctx)
		return err
	}
	if _, err := s.checkInner(ctx); err != nil {
		var nested *NestedPrefixError
		if !errors.As(err, &nested) {
			// Not read (etcd did not answer): the marker stays, the
			// claim's; serve says so and serves, as for a claim etcd
			// did not answer at all.
			return err
		}
		// A fleet inside this prefix claimed it before this marker was
		// put: this claim loses. The marker goes, if still this one.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.RequestTimeout)
		defer cancel()
		if _, derr := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(mark), "=", resp.Header.Revision)).Then(clientv3.OpDelete(mark)).Commit(); derr != nil {
			return fmt.Errorf("%w (and the fleet's marker %s, put by this claim, stays: etcd did not take it back: %v)", err, mark, derr)
		}
		return err
	}
	return nil
}

// inCopyLock refuses a prefix inside the copy lock's keys of a prefix
// containing it (/p/c/copy/x/ of /p/): the one part of a fleet's range
// its claim does not read (checkInner: any key under "c/copy/" may be a
// lock's), so neither fleet would find the other, and the inner one's
// keys would hold the outer one's copy lock for ever. Refused whether a
// fleet is there or not: it is known from the name.
func (s *Store) inCopyLock() error {
	for _, outer := range outerPrefixes(s.prefix) {
		if strings.HasPrefix(s.prefix[len(outer):], "c/copy/") {
			return &NestedPrefixError{Prefix: s.prefix, Other: outer, Inside: true, err: permatrix.Errorf(permatrix.EINVALID,
				"etcd prefix %s is inside %sc/copy/, where a fleet at %s keeps its copy lock: its keys would hold that lock (every store copy into %s refused), and neither fleet's claim would find the other: %s",
				s.prefix, outer, outer, outer, nestedFix)}
		}
	}
	return nil
}

// outerPrefixes are the prefixes that contain prefix ("/a/" and "/a/b/"
// of "/a/b/c/"), shortest first.
func outerPrefixes(prefix string) []string {
	var out []string
	for i := 1; i < len(prefix)-1; i++ {
		if prefix[i] == '/' {
			out = append(out, prefix[:i+1])
		}
	}
	return out
}

// checkOuter looks for a fleet at a prefix containing the store's: its
// marker or its root guard, two keys read per prefix, all in one
// transaction (within --max-txn-ops). A prefix whose keys the store's
// user may not read (etcd's permissions, the store's own prefix only)
// refuses the transaction: each is then read on its own, and one refused
// is skipped: a fleet there finds this one inside it when it claims its
// own. It returns the prefixes it read.
func (s *Store) checkOuter(ctx context.Context) ([]string, error) {
	outers := outerPrefixes(s.prefix)
	var read []string
	for per := max(1, s.opts.MaxTxnOps/2); len(outers) > 0; {
		chunk := outers[:min(len(outers), per)]
		outers = outers[len(chunk):]
		err := s.readOuters(ctx, chunk)
		if err != nil && len(chunk) > 1 && refusal(err) && ctx.Err() == nil {
			for _, o := range chunk {
				err := s.readOuters(ctx, []string{o})
				if err == nil {
					read = append(read, o)
					continue
				}
				if !permissionDenied(err) || ctx.Err() != nil {
					return nil, err
				}
				s.log.Warn("not checked whether a fleet is at a prefix containing this one: etcd refused to read its keys", "prefix", o, "err", err)
			}
			continue
		}
		if err != nil {
			if len(chunk) == 1 && permissionDenied(err) && ctx.Err() == nil {
				s.log.Warn("not checked whether a fleet is at a prefix containing this one: etcd refused to read its keys", "prefix", chunk[0], "err", err)
				continue
			}
			return nil, err
		}
		read = append(read, chunk...)
	}
	return read, nil
}

// permissionDenied reports whether err is etcd refusing a read for the
// user's permissions: the one refusal a containing prefix is skipped for.
// Others (too many operations in a transaction, a request too large) say
// nothing of what is there.
func permissionDenied(err error) bool {
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	return code == codes.PermissionDenied
}

// readOuters reads the marker and the root guard of each of outers in one
// transaction (two, if the cluster takes one operation a transaction): a
// *NestedPrefixError if one is there.
func (s *Store) readOuters(ctx context.Context, outers []string) error {
	var gets []clientv3.Op
	for _, o := range outers {
		gets = append(gets, clientv3.OpGet(o+fleetMarkName, clientv3.WithKeysOnly()), clientv3.OpGet(o+"g/", clientv3.WithKeysOnly()))
	}
	found, _, err := s.readInTxns(ctx, gets)
	if err != nil {
		if len(outers) == 1 {
			return fmt.Errorf("reading whether a fleet is at %s: %w", outers[0], err)
		}
		return fmt.Errorf("reading whether a fleet is at a prefix containing this one: %w", err)
	}
	for i, r := range found {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			return s.insideError(outers[i/2], string(kvs[0].Key), i%2 == 1)
		}
	}
	return nil
}

// readInTxns reads gets in as few transactions as the cluster's
// --max-txn-ops allows, their answers in order; readAt is the revision the
// first transaction read at.
func (s *Store) readInTxns(ctx context.Context, gets []clientv3.Op) (found []*etcdserverpb.ResponseOp, readAt int64, err error) {
	for len(gets) > 0 {
		n := min(len(gets), s.opts.MaxTxnOps)
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		resp, err := s.cli.Txn(rctx).Then(gets[:n]...).Commit()
		cancel()
		if err != nil {
			return nil, 0, err
		}
		if readAt == 0 {
			readAt = resp.Header.Revision
		}
		found, gets = append(found, resp.Responses...), gets[n:]
	}
	return found, readAt, nil
}

// insideError refuses the store's prefix, inside outer, where etcd holds
// key: that fleet's marker, or its root guard.
func (s *Store) insideError(outer, key string, guard bool) error {
	what := "its marker"
	if guard {
		what = "its root guard: a fleet that has committed"
	}
	return &NestedPrefixError{Prefix: s.prefix, Other: outer, Key: key, Inside: true, err: permatrix.Errorf(permatrix.EINVALID,
		"etcd prefix %s is inside %s, the prefix of another permatrix fleet (etcd holds %s, the key %q): %s",
		s.prefix, outer, what, key, nestedFix)}
}

// ownGaps are the ranges of the store's prefix that hold none of its
// keys — [from, to) each: outside "c/", "g/", "k/" and "m/"; in "c/",
// outside the copy lock's "c/copy/"; in "m/", the keys other than its
// meta keys; in "k/", the keys of no namespace of the store
// (store.Namespaces); in "g/", the guards of no unit (the root guard "g/",
// a namespace's, and those below it).
func (s *Store) ownGaps() [][2]string {
	p := s.prefix
	after := func(k string) string { return k + "\x00" }
	gaps := [][2]string{
		{p, p + "c/"}, {p + "c0", p + "g/"}, {p + "g0", p + "k/"}, {p + "k0", p + "m/"}, {p + "m0", clientv3.GetPrefixRangeEnd(p)},
		{p + "c/", p + "c/copy/"}, {p + "c/copy0", p + "c0"},
	}
	// The meta keys, sorted.
	from := p + "m/"
	for _, k := range []string{s.copyKey(), p + fleetMarkName, s.idKey(), s.nudgeKey()} {
		gaps = append(gaps, [2]string{from, k})
		from = after(k)
	}
	gaps = append(gaps, [2]string{from, p + "m0"})
	dataFrom, guardFrom := p+"k/", p+"g/\x00"
	for _, ns := range store.Namespaces() {
		gaps = append(gaps, [2]string{dataFrom, p + "k/" + ns + "\x00"}, [2]string{guardFrom, p + "g/" + ns})
		dataFrom, guardFrom = p+"k/"+ns+"\x01", p+"g/"+ns+"\x01"
	}
	return append(gaps, [2]string{dataFrom, p + "k0"}, [2]string{guardFrom, p + "g0"})
}

// checkInner reads the store's range where none of its keys are
// (ownGaps), one key at most per gap: a key found there is another
// fleet's, at a prefix inside the store's, or something else's. It
// returns the revision it read at (the earliest, if it took several
// transactions).
func (s *Store) checkInner(ctx context.Context) (int64, error) {
	var gets []clientv3.Op
	for _, g := range s.ownGaps() {
		gets = append(gets, clientv3.OpGet(g[0], clientv3.WithRange(g[1]), clientv3.WithLimit(1), clientv3.WithKeysOnly()))
	}
	// Within the cluster's --max-txn-ops (18 reads: one transaction at
	// etcd's default, 128).
	found, readAt, err := s.readInTxns(ctx, gets)
	if err != nil {
		return 0, fmt.Errorf("reading whether etcd prefix %s holds keys not of its store: %w", s.prefix, err)
	}
	for _, r := range found {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue
		}
		key := string(kvs[0].Key)
		e := &NestedPrefixError{Prefix: s.prefix, Other: innerPrefix(s.prefix, key), Key: key}
		shown := strconv.Quote(cutFrom(key))
		if e.Other != "" {
			e.err = permatrix.Errorf(permatrix.EINVALID,
				"etcd prefix %s holds the key %s, which is no key of the store at %s: another permatrix fleet's, whose prefix %s is inside %s (or a key put by something else): %s",
				s.prefix, shown, s.prefix, strconv.Quote(cutFrom(e.Other)), s.prefix, nestedFix)
		} else {
			e.err = permatrix.Errorf(permatrix.EINVALID,
				"etcd prefix %s holds the key %s, which is no key of the store at %s (put by something else, or another fleet's at a prefix inside it): a fleet reads every key under its prefix as its own; delete it, or give the fleet a prefix of its own (docs/fleet.md)",
				s.prefix, shown, s.prefix)
		}
		return 0, e
	}
	return readAt, nil
}

// innerPrefix is the prefix of the fleet inside prefix whose key key
// would be: key up to its first "c/", "g/", "k/" or "m/" after a "/"
// past prefix; "" if none.
func innerPrefix(prefix, key string) string {
	if m, ok := strings.CutSuffix(key, "/"+fleetMarkName); ok && len(m) > len(prefix) {
		return m + "/"
	}
	for i := len(prefix) + 1; i+2 <= len(key); i++ {
		if key[i-1] == '/' && key[i+1] == '/' && strings.IndexByte("cgkm", key[i]) >= 0 {
			return key[:i]
		}
	}
	return ""
}
