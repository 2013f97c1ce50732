package store

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
)

// Problem is one inconsistency found by Verify.
type Problem struct {
	Where string `json:"where"`
	What  string `json:"what"`
}

// Verify walks every key of a snapshot and checks the layout's invariants:
// every key belongs to the layout, every value decodes, and every record and
// its indexes agree (doc.go). It reports at most max problems.
//
// It reads the snapshot once, in key order, without a lookup: each record
// adds the hashes of the index entries it implies to a sum, each index entry
// found subtracts its own, and the records and indexes agree exactly when
// the sum comes back to zero (a multiset hash; the seed is random per call,
// so no stored file can be made to cancel out). Only when it does not — or
// a record is malformed — does a second, slower pass look each entry up to
// say which ones are wrong. At a million assignments the first pass is a
// few seconds where the lookups took twenty; its decoding runs on every core.
func Verify(s Snapshot, max int) []Problem {
	if verifyScan(s) {
		return nil
	}
	if out := verifyLookups(s, max); len(out) > 0 {
		return out
	}
	// The lookups check each entry against its record; an entry that
	// points at the right assignment but under the wrong role or scope, or a
	// duplicate, only unbalances the sum.
	return []Problem{{Where: "indexes", What: "the index entries do not match the records exactly (an entry under the wrong role, scope or group, or one too many); rebuild the store from an export"}}
}

// verifyScan is Verify's single pass: it reports whether every record is
// well formed and the index entries found are exactly those the records
// imply. The scan copies records in batches to a worker per core, which
// decode them and keep their own sums (addition commutes).
func verifyScan(s Snapshot) bool {
	seed := maphash.MakeSeed()
	workers := runtime.GOMAXPROCS(0)
	batches := make(chan *recordBatch, 2*workers)
	sums := make([]uint64, workers)
	bad := make([]bool, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if bad[w] {
					continue // drain
				}
				for i := 0; i+1 < len(b.ends); i += 2 {
					k := b.arena[b.start(i):b.ends[i]]
					v := b.arena[b.ends[i]:b.ends[i+1]]
					d, ok := recordSum(seed, k, v)
					if !ok {
						bad[w] = true
						break
					}
					sums[w] += d
				}
			}
		}()
	}
	b := &recordBatch{}
	err := s.Scan(nil, nil, func(k, v []byte) error {
		b.arena = append(append(b.arena, k...), v...)
		b.ends = append(b.ends, len(b.arena)-len(v), len(b.arena))
		if len(b.ends) >= 2*recordBatchSize {
			batches <- b
			b = &recordBatch{}
		}
		return nil
	})
	batches <- b
	close(batches)
	wg.Wait()
	var sum uint64
	for w := range workers {
		if bad[w] {
			return false
		}
		sum += sums[w]
	}
	return err == nil && sum == 0
}

const recordBatchSize = 4096

// recordBatch is a run of records copied out of a snapshot: key i and its
// value end at ends[2i] and ends[2i+1] of arena.
type recordBatch struct {
	arena []byte
	ends  []int
}

func (b *recordBatch) start(i int) int {
	if i == 0 {
		return 0
	}
	return b.ends[i-1]
}

// CheckRecord checks one record on its own, by the rule Verify holds each
// record to (recordSum): its key is one of the layout's and its value
// decodes as the record its key names. Whether the records and indexes
// agree with each other takes the others (Verify). The error says what
// kind of record is wrong, never the value: a value permatrix did not write
// may be anything, and the message goes to logs and /health.
func CheckRecord(k, v []byte) error {
	if _, ok := recordSum(checkSeed, k, v); ok {
		return nil
	}
	ns, ix, _ := keyHead(k)
	if kind, ok := recordKinds[ns+" "+ix]; ok {
		return fmt.Errorf("not a %s as permatrix writes it (key or value)", kind)
	}
	return fmt.Errorf("a key outside the store's layout")
}

// checkSeed is CheckRecord's: the sum is not kept.
var checkSeed = maphash.MakeSeed()

// recordKinds names the records recordSum knows, by their first two
// segments.
var recordKinds = map[string]string{
	"d grants": "grant", "d memberships": "membership", "d roles": "role", "d projects": "project",
	"d scopes": "scopes index entry", "i assignments": "assignments index entry",
	"i members": "members index entry", "i role_uses": "role-uses index entry",
}

// recordSum checks one record and returns what it adds to the sum: the
// hashes of the index entries a record implies, minus the hash of an index
// entry. ok is false for a record that breaks the layout.
func recordSum(seed maphash.Seed, k, v []byte) (d uint64, ok bool) {
	ns, ix, n := keyHead(k)
	switch ns + " " + ix {
	case "d grants":
		a, err := assignmentOf(k, v)
		if err != nil || a.Validate() != nil {
			return 0, false
		}
		d = entryHash(seed, assignmentKey(a.ID), k)
		if a.Role != "" {
			d += entryHash(seed, roleUseKey(a.System, a.Role, a.ID))
		}
		if !a.Scope.IsService() {
			d += entryHash(seed, scopeUseKey(a.System, a.Scope, a.ID))
		}
		return d, true
	case "d memberships":
		segs := Segments(k)
		if n != 4 || string(v) != "true" {
			return 0, false
		}
		return entryHash(seed, Key(nsIndex, ixMembers, segs[3], segs[2])), true
	case "d roles":
		var rv roleValue
		return 0, n == 4 && unmarshalRecord(v, &rv) == nil && rv.Permissions != nil
	case "d projects":
		_, err := unmarshalProject(v)
		return 0, n == 4 && err == nil
	case "i assignments":
		return -entryHash(seed, k, v), n == 3
	case "i members":
		return -entryHash(seed, k), n == 4
	case "d scopes":
		// Its value is read as data.store.scopes' leaves: "true", as
		// written (a null would be read as present, other bytes fail
		// the decisions that read them).
		return -entryHash(seed, k), n == 5 && string(v) == "true"
	case "i role_uses":
		return -entryHash(seed, k), n == 5
	}
	return 0, false
}

// entryHash hashes an index entry: its key and, where the entry carries
// one, its value (parts are length-prefixed, so no two splits collide).
func entryHash(seed maphash.Seed, parts ...[]byte) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, p := range parts {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum64()
}

// keyHead returns a key's first two segments and its number of segments,
// without splitting the rest.
func keyHead(k []byte) (ns, ix string, n int) {
	n = bytes.Count(k, []byte{sep}) + 1
	first, rest, _ := bytes.Cut(k, []byte{sep})
	second, _, _ := bytes.Cut(rest, []byte{sep})
	return string(first), string(second), n
}

// verifyLookups checks each record and index entry by looking up what it
// points at, to name the ones that are wrong.
func verifyLookups(s Snapshot, max int) []Problem {
	var out []Problem
	add := func(k []byte, format string, args ...any) error {
		out = append(out, Problem{Where: fmt.Sprintf("%q", Segments(k)), What: fmt.Sprintf(format, args...)})
		if len(out) >= max {
			return ErrStop
		}
		return nil
	}
	has := func(k []byte) bool { v, err := s.Get(k); return err == nil && v != nil }
	err := s.Scan(nil, nil, func(k, v []byte) error {
		segs := Segments(k)
		if len(segs) < 2 {
			return add(k, "key outside the layout")
		}
		switch segs[0] + " " + segs[1] {
		case "d grants":
			a, err := assignmentOf(k, v)
			if err != nil {
				return add(k, "%v", err)
			}
			if err := a.Validate(); err != nil {
				return add(k, "invalid assignment: %v", err)
			}
			if dk, err := s.Get(assignmentKey(a.ID)); err != nil || !bytes.Equal(dk, k) {
				return add(k, "assignment %s has no index entry pointing at it", a.ID)
			}
			if a.Role != "" && !has(roleUseKey(a.System, a.Role, a.ID)) {
				return add(k, "assignment %s is missing from the role-uses index", a.ID)
			}
			if !a.Scope.IsService() && !has(scopeUseKey(a.System, a.Scope, a.ID)) {
				return add(k, "assignment %s is missing from the scopes index", a.ID)
			}
		case "d memberships":
			if len(segs) != 4 || string(v) != "true" {
				return add(k, "not a membership")
			}
			if !has(Key(nsIndex, ixMembers, segs[3], segs[2])) {
				return add(k, "membership missing from the members index")
			}
		case "d roles":
			var rv roleValue
			if len(segs) != 4 || unmarshalRecord(v, &rv) != nil || rv.Permissions == nil {
				return add(k, "not a role")
			}
		case "d projects":
			if _, err := unmarshalProject(v); len(segs) != 4 || err != nil {
				return add(k, "not a project")
			}
		case "i assignments":
			if len(segs) != 3 {
				return add(k, "not an assignment index entry")
			}
			if _, err := Assignment(s, segs[2]); err != nil {
				return add(k, "%v", err)
			}
		case "i members":
			if len(segs) != 4 || !has(Key(nsDoc, ixMemberships, segs[3], segs[2])) {
				return add(k, "members index entry without its membership")
			}
		case "i role_uses", "d scopes":
			if len(segs) != 5 {
				return add(k, "not an index entry")
			}
			if a, err := Assignment(s, segs[4]); err != nil || a.System != segs[2] {
				return add(k, "index entry names no assignment of system %s", segs[2])
			}
		default:
			return add(k, "key outside the layout")
		}
		return nil
	})
	if err != nil {
		out = append(out, Problem{Where: "scan", What: err.Error()})
	}
	return out
}
