package bolt

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// The scope index in a file of format 3.
//
// The store's scope index has a key per assignment below the service scope,
// d scopes <system> <scope> <id>: ordered by scope, a commit of an import's
// chunk adds to the tails of thousands of scopes, each on a page of its own
// — ~3 600 of a 1M import's ~4 960 pages a commit, each read whole into a
// node and written whole (docs/performance.md, 2026-11-29 08:10). A file of
// format 3 stores each such key with the bucket of its id after the system,
//
//	d scopes <system> <bucket> <scope> <id>    bucket: the id's first idBucketLen bytes
//
// so that a commit's new ids, one or two buckets of them, add to those
// buckets' part of the index only. The store above sees the keys as it
// wrote them (store.Snapshot): Get maps the key, Scan merges the buckets of
// each system back into the order of scope, then id. An id's bucket is a
// prefix of it (an id shorter than idBucketLen is its own), so buckets in
// key order hold the ids in order: the keys of one scope are those of each
// bucket in turn.
//
// Invariants: in a file of format 3 every kv key below scopesPrefix has
// exactly three separators after it (system, bucket, scope, id) and its
// bucket is its id's (a store key below scopesPrefix not of the layout
// d scopes <system> <scope> <id> is refused when written, storedKey, and
// not found when read); a file of format 2 keeps the store's keys as they
// are (it is read as it was written; nothing is migrated).

// sep is the store keys' separator of segments.
const sep = 0

// scopesPrefix is the scope index's part of the store's keys.
var scopesPrefix = []byte("d\x00scopes\x00")

// scopesEnd is past every key below scopesPrefix.
var scopesEnd = []byte("d\x00scopes\x01")

// idBucketLen is how many bytes of an id name its bucket: 10 000
// generated ids (a000000000000 to a000000009999, IDFormat) a bucket.
const idBucketLen = 9

// scopeKey splits a store key below scopesPrefix of the scope index's
// layout, d scopes <system> <scope> <id> (the id not empty): sys ends its
// system segment (the index of its separator), bucket is its id's. ok is
// false for a key of another shape.
func scopeKey(key []byte) (sys int, bucket []byte, ok bool) {
	rest := key[len(scopesPrefix):]
	first := bytes.IndexByte(rest, sep)
	if first < 0 {
		return 0, nil, false
	}
	second := bytes.IndexByte(rest[first+1:], sep)
	if second < 0 {
		return 0, nil, false
	}
	id := rest[first+1+second+1:]
	if len(id) == 0 || bytes.IndexByte(id, sep) >= 0 {
		return 0, nil, false
	}
	return len(scopesPrefix) + first, id[:min(len(id), idBucketLen)], true
}

// storedKey is the key a store key is kept under in a file whose scope
// index is bucketed; other keys, and every key of a file that is not,
// are kept as they are. A key below scopesPrefix not of the scope index's
// layout is refused there (EINVALID): kept as it is, it would break the
// index's layout (every scan of it fails) or be the bucketed key of
// another store key (d scopes s c b c is where d scopes s b c is kept),
// and overwrite it.
func storedKey(bucketed bool, key []byte) ([]byte, error) {
	if !bucketed || !bytes.HasPrefix(key, scopesPrefix) {
		return key, nil
	}
	sys, bucket, ok := scopeKey(key)
	if !ok {
		return nil, notOfLayout(key)
	}
	out := make([]byte, 0, len(key)+len(bucket)+1)
	out = append(out, key[:sys+1]...)
	out = append(append(out, bucket...), sep)
	return append(out, key[sys+1:]...), nil
}

// keptErr is storedKey's refusal alone, building no key (a Commit checks
// its operations before they are queued).
func keptErr(bucketed bool, key []byte) error {
	if !bucketed || !bytes.HasPrefix(key, scopesPrefix) {
		return nil
	}
	if _, _, ok := scopeKey(key); !ok {
		return notOfLayout(key)
	}
	return nil
}

func notOfLayout(key []byte) error {
	return permatrix.Errorf(permatrix.EINVALID, "bolt: key %q is below the scope index but not of its layout (d scopes <system> <scope> <id>)", store.Segments(key))
}

// Holds reports whether a bolt file keeps key: bbolt refuses an empty key
// and one longer than bbolt.MaxKeySize, and a file of format 3 a key below
// the scope index not of its layout (storedKey), and keeps one of it under
// a key longer by its bucket. A replica leaves out what it cannot hold: an
// apply it refused would stop it at the revision before, for good
// (internal/etcd: such a key is damage).
func Holds(key []byte) bool {
	n := len(key)
	if bytes.HasPrefix(key, scopesPrefix) {
		_, bucket, ok := scopeKey(key)
		if !ok {
			return false
		}
		n += len(bucket) + 1
	}
	return len(key) > 0 && n <= bbolt.MaxKeySize
}

// storeKeyOf is the store key of a key kept in the scope index of a
// bucketed file (storedKey's inverse); false for a key not of its layout.
func storeKeyOf(stored []byte) ([]byte, bool) {
	seps, err := splitStored(stored)
	if err != nil {
		return nil, false
	}
	out := make([]byte, 0, len(stored)-(seps[1]-seps[0]))
	out = append(out, stored[:seps[0]+1]...)
	return append(out, stored[seps[1]+1:]...), true
}

// splitStored finds the separators that end the system and the bucket of
// a key kept in a bucketed scope index, checking its layout (three
// separators after scopesPrefix, the bucket its id's).
func splitStored(stored []byte) (seps [3]int, err error) {
	n := 0
	for i := len(scopesPrefix); i < len(stored); i++ {
		if stored[i] == sep {
			if n == 3 {
				return seps, errNotScopeKey
			}
			seps[n] = i
			n++
		}
	}
	if n != 3 {
		return seps, errNotScopeKey
	}
	bucket, id := stored[seps[0]+1:seps[1]], stored[seps[2]+1:]
	if len(id) == 0 || !bytes.Equal(bucket, id[:min(len(id), idBucketLen)]) {
		return seps, errNotScopeKey
	}
	return seps, nil
}

var errNotScopeKey = errors.New("not a key of the bucketed scope index")

// overlaps reports whether some key has both prefixes.
func overlaps(a, b []byte) bool { return bytes.HasPrefix(a, b) || bytes.HasPrefix(b, a) }

// scanBucketed is Scan in a file whose scope index is bucketed: the keys
// before the index and after it as stored, the index's merged back into
// the store's order (scanScopes).
func (s *snapshot) scanBucketed(prefix, after []byte, fn func(k, v []byte) error) error {
	if bytes.Compare(prefix, scopesPrefix) < 0 {
		done, err := s.scanStored(s.kv.Cursor(), prefix, after, scopesPrefix, fn)
		if done || err != nil {
			return err
		}
	}
	done, err := s.scanScopes(prefix, after, fn)
	if done || err != nil {
		return err
	}
	if bytes.HasPrefix(prefix, scopesPrefix) {
		return nil
	}
	c := s.kv.Cursor()
	if after == nil || bytes.Compare(after, scopesEnd) < 0 {
		// From scopesEnd itself (prefix, a prefix of scopesPrefix, is
		// before it): "d scopes\x01" is a key like any other, to give,
		// not to skip as an after's.
		k, stored := c.Seek(scopesEnd)
		_, err = s.scanFrom(c, k, stored, prefix, nil, fn)
		return err
	}
	_, err = s.scanStored(c, prefix, after, nil, fn)
	return err
}

// scanStored calls fn for the keys with prefix after after (all of them
// for nil), as stored, up to stop (nil: none), read with c. done is true
// once fn stopped the scan.
func (s *snapshot) scanStored(c *bbolt.Cursor, prefix, after, stop []byte, fn func(k, v []byte) error) (done bool, err error) {
	var k, stored []byte
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		k, stored = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, stored = c.Next()
		}
	} else {
		k, stored = c.Seek(prefix)
	}
	return s.scanFrom(c, k, stored, prefix, stop, fn)
}

// scanFrom is scanStored from k, stored: where c stands.
func (s *snapshot) scanFrom(c *bbolt.Cursor, k, stored, prefix, stop []byte, fn func(k, v []byte) error) (done bool, err error) {
	for ; k != nil && bytes.HasPrefix(k, prefix) && (stop == nil || bytes.Compare(k, stop) < 0); k, stored = c.Next() {
		if done, err := s.emit(k, k, stored, fn); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// emit unseals stored, kept under key k (the store's key), and calls fn.
func (s *snapshot) emit(key, k, stored []byte, fn func(k, v []byte) error) (done bool, err error) {
	s.scanned += int64(len(k) + len(stored))
	v, err := unseal(key, stored)
	if err != nil {
		return true, err
	}
	if err := call(fn, key, v); err != nil {
		if errors.Is(err, store.ErrStop) {
			return true, nil
		}
		return true, err
	}
	return false, nil
}

// scanScopes calls fn for the scope index's keys that have prefix and sort
// after after, in the store's order: system by system, each system's
// buckets merged by scope, then id.
func (s *snapshot) scanScopes(prefix, after []byte, fn func(k, v []byte) error) (done bool, err error) {
	if !overlaps(prefix, scopesPrefix) {
		return false, nil
	}
	if after != nil && bytes.Compare(after, scopesEnd) >= 0 {
		return false, nil
	}
	// The first system to read: prefix's or after's, whichever is later,
	// cut to its system (a store key's scope and id are not where its
	// bucketed key is).
	seek := scopesPrefix
	if len(prefix) > len(seek) {
		seek = prefix
	}
	if after != nil && bytes.Compare(after, seek) > 0 {
		seek = after
	}
	if end := bytes.IndexByte(seek[len(scopesPrefix):], sep); end >= 0 {
		seek = seek[:len(scopesPrefix)+end]
	}
	systems := s.kv.Cursor()
	for k, _ := systems.Seek(seek); k != nil && bytes.HasPrefix(k, scopesPrefix); {
		end := bytes.IndexByte(k[len(scopesPrefix):], sep)
		if end < 0 {
			return true, corruptScopeKey(k)
		}
		system := k[:len(scopesPrefix)+end+1] // d scopes <system> and its separator
		if !overlaps(prefix, system) {
			if bytes.Compare(system, prefix) > 0 {
				return false, nil
			}
		} else if after == nil || bytes.Compare(after, system) < 0 || bytes.HasPrefix(after, system) {
			if done, err := s.scanSystem(system, prefix, after, fn); done || err != nil {
				return done, err
			}
		}
		next := append(system[:len(system)-1:len(system)-1], sep+1)
		k, _ = systems.Seek(next)
	}
	return false, nil
}

// scanSystem merges the buckets of one system's scope index (system: its
// keys' prefix, d scopes <system> and a separator).
func (s *snapshot) scanSystem(system, prefix, after []byte, fn func(k, v []byte) error) (done bool, err error) {
	// within: the store keys' part after system that prefix asks for;
	// from: where after leaves off in it (nil: from the first).
	var within, from []byte
	if len(prefix) > len(system) {
		within = prefix[len(system):]
	}
	if after != nil && bytes.HasPrefix(after, system) {
		from = after[len(system):]
	}
	var m scopeMerge
	buckets := s.kv.Cursor()
	for k, _ := buckets.Seek(system); k != nil && bytes.HasPrefix(k, system); {
		end := bytes.IndexByte(k[len(system):], sep)
		if end < 0 {
			return true, corruptScopeKey(k)
		}
		bucket := k[:len(system)+end+1] // ... <bucket> and its separator
		start := append(append([]byte(nil), bucket...), within...)
		if from != nil && bytes.Compare(from, within) > 0 {
			start = append(append([]byte(nil), bucket...), from...)
		}
		c := s.kv.Cursor()
		b := &bucketCursor{c: c, prefix: append(append([]byte(nil), bucket...), within...), tail: len(bucket)}
		b.k, b.v = c.Seek(start)
		if from != nil && b.valid() && bytes.Equal(b.k[b.tail:], from) {
			b.k, b.v = c.Next()
		}
		if b.valid() {
			m = append(m, b)
		}
		next := append(bucket[:len(bucket)-1:len(bucket)-1], sep+1)
		k, _ = buckets.Seek(next)
	}
	heap.Init(&m)
	for len(m) > 0 {
		b := m[0]
		if _, err := splitStored(b.k); err != nil {
			return true, corruptScopeKey(b.k)
		}
		key := make([]byte, 0, len(system)+len(b.k)-b.tail)
		key = append(append(key, system...), b.k[b.tail:]...)
		if done, err := s.emit(key, b.k, b.v, fn); done || err != nil {
			return done, err
		}
		b.k, b.v = b.c.Next()
		if b.valid() {
			heap.Fix(&m, 0)
		} else {
			heap.Pop(&m)
		}
	}
	return false, nil
}

func corruptScopeKey(k []byte) error {
	return fmt.Errorf("bolt: key %q of the scope index is not of its layout (d scopes <system> <bucket> <scope> <id>)", store.Segments(k))
}

// bucketCursor reads one bucket of a system's scope index: keys with
// prefix, ordered by what follows their bucket (k[tail:]: scope, id).
type bucketCursor struct {
	c      *bbolt.Cursor
	prefix []byte
	tail   int
	k, v   []byte
}

func (b *bucketCursor) valid() bool { return b.k != nil && bytes.HasPrefix(b.k, b.prefix) }

// scopeMerge is a heap of a system's bucket cursors, the least key first.
type scopeMerge []*bucketCursor

func (m scopeMerge) Len() int { return len(m) }
func (m scopeMerge) Less(i, j int) bool {
	return bytes.Compare(m[i].k[m[i].tail:], m[j].k[m[j].tail:]) < 0
}
func (m scopeMerge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *scopeMerge) Push(x any)   { *m = append(*m, x.(*bucketCursor)) }
func (m *scopeMerge) Pop() any {
	old := *m
	b := old[len(old)-1]
	*m = old[:len(old)-1]
	return b
}
