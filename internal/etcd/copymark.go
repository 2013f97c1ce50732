package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
)

// A copy into a prefix (permatrix store copy) is many commits: until its
// last one the prefix holds part of a store. The copy marks the prefix
// first — <prefix>m/copying, put before anything of the target is deleted
// or copied — and removes the mark after its last commit (and the id
// counter's raise). A replica follows the mark with the keys (it is a meta
// key: the watch carries it, and a resync reads it at the revision of its
// pages), records it with the revision it applies (bolt's note), and a
// Store does not serve a marked revision: View refuses it
// (IncompleteCopyError, EUNAVAILABLE) and Health is not ready, until a
// copy run again (--force) completes and removes the mark. Only the
// copy's own target (Options.CopyTarget) reads and writes a marked prefix.

// copyMark is the marker's value.
type copyMark struct {
	From    string    `json:"from"`
	Started time.Time `json:"started"`
}

// IncompleteCopyError is a prefix a store copy marked and has not
// completed: it holds part of a store, which is never served. It unwraps
// to an EUNAVAILABLE *permatrix.Error.
type IncompleteCopyError struct {
	Prefix string
	From   string    // the copy's source, as its --from named it
	Since  time.Time // when the copy started
	err    *permatrix.Error
}

func (e *IncompleteCopyError) Error() string { return e.err.Error() }
func (e *IncompleteCopyError) Unwrap() error { return e.err }

// errIncomplete is the error of a replica whose note is the copy marker
// value v.
func (s *Store) errIncomplete(v string) error { return s.incomplete(v, "") }

// incomplete is errIncomplete with more said at the end of the message.
func (s *Store) incomplete(v, more string) error {
	var m copyMark
	_ = json.Unmarshal([]byte(v), &m) // a value not ours: named as unknown
	from, since := m.From, "at an unknown time"
	if from == "" {
		from = "an unknown source"
	}
	if !m.Started.IsZero() {
		since = "at " + m.Started.UTC().Format(time.RFC3339)
	}
	return &IncompleteCopyError{Prefix: s.prefix, From: m.From, Since: m.Started, err: permatrix.Errorf(permatrix.EUNAVAILABLE,
		"etcd prefix %s holds an incomplete copy (permatrix store copy from %s, started %s: still running, or interrupted), so part of a store, which is not served: if the copy was interrupted, run it again with --force to complete it (docs/fleet.md)%s",
		s.prefix, from, since, more)}
}

// IncompleteCopy is the copy marker's error if the replica's latest
// revision is marked (a store copy into the prefix not completed), else
// nil.
func (s *Store) IncompleteCopy() error {
	if n := s.replica.Note(); n != "" {
		return s.errIncomplete(n)
	}
	return nil
}

// Servable says why the store serves nothing now, as View would
// (store.Servable): a replica being loaded, or one at a revision a store
// copy marked. The decision cache asks it before answering.
func (s *Store) Servable() error {
	if s.syncing.Load() {
		return errSyncing()
	}
	if n := s.replica.Note(); n != "" && !s.opts.CopyTarget {
		return s.errIncomplete(n)
	}
	return nil
}

// MarkCopy marks the prefix as holding a copy in progress, from the store
// named from, and waits until the replica has applied the mark. Only a
// Store opened with Options.CopyTarget marks a prefix.
func (s *Store) MarkCopy(ctx context.Context, from string) error {
	if !s.opts.CopyTarget {
		return errors.New("etcd: MarkCopy on a store not opened as a copy's target")
	}
	v, err := json.Marshal(copyMark{From: from, Started: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	return s.putMeta(ctx, clientv3.OpPut(s.copyKey(), string(v)), "marking the prefix as holding a copy in progress")
}

// UnmarkCopy removes the mark of MarkCopy once the copy is complete: the
// prefix is served again.
func (s *Store) UnmarkCopy(ctx context.Context) error {
	return s.putMeta(ctx, clientv3.OpDelete(s.copyKey()), "removing the mark of the copy in progress")
}

// putMeta sends op (on a meta key) and waits until the replica has applied
// its revision.
func (s *Store) putMeta(ctx context.Context, op clientv3.Op, what string) error {
	if err := s.awaitCheck(ctx); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	resp, err := s.cli.Do(rctx, op)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %w", what, s.commitError(ctx, err))
	}
	var rev int64
	switch {
	case resp.Put() != nil:
		rev = resp.Put().Header.Revision
	case resp.Del() != nil:
		rev = resp.Del().Header.Revision
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	defer context.AfterFunc(s.alive, cancel)()
	if err := s.Wait(wctx, uint64(rev)); err != nil {
		return fmt.Errorf("%s: the replica did not apply etcd revision %d: %w", what, rev, err)
	}
	return nil
}
