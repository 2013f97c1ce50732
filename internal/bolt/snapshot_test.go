package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/permatrix/permatrix/internal/store"
)

// kvFile writes keys (sealed values) and a nested bucket into a bbolt file
// made with bbolt itself, and returns it open with the sorted keys.
func kvFile(t *testing.T, keys [][]byte) (*bbolt.DB, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.db")
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	err = b.Update(func(tx *bbolt.Tx) error {
		kv, err := tx.CreateBucket(bucketKV)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := kv.Put(k, sealed(k, "v:"+string(k))); err != nil {
				return err
			}
		}
		// A nested bucket: bbolt's Get answers nil for it (the open check
		// refuses such a file; the read must still not hand out its header).
		_, err = kv.CreateBucket([]byte("m/nested"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, bytes.Compare)
	sorted = slices.CompactFunc(sorted, bytes.Equal)
	return b, sorted
}

// refGet is a fresh bbolt read of key in its own transaction.
func refGet(t *testing.T, b *bbolt.DB, key []byte) (v []byte, err error) {
	t.Helper()
	_ = b.View(func(tx *bbolt.Tx) error {
		stored := tx.Bucket(bucketKV).Get(key)
		if stored != nil {
			v, err = unseal(key, stored)
			v = slices.Clone(v)
		}
		return nil
	})
	return v, err
}

// refScan is a fresh bbolt scan, as the contract of Scan states it.
func refScan(b *bbolt.DB, prefix, after []byte) (keys []string) {
	_ = b.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if after != nil && bytes.Compare(k, after) <= 0 {
				continue
			}
			keys = append(keys, string(k))
		}
		return nil
	})
	return keys
}

// Every Get of a snapshot answers as a fresh bbolt Get of the same file —
// keys that are prefixes of others, the empty and nil key, the first and
// last key of each page, keys between pages and after the last, a nested
// bucket — whatever reads came before: scans ended by an error, by
// ErrStop, by a panic, scans inside scans three deep.
func TestSnapshotGetAsBbolt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var keys [][]byte
	for i := range 3000 {
		// Long keys of few distinct segments: many pages, many keys that
		// are prefixes of others.
		k := fmt.Appendf(nil, "g/%03d/%s", rng.IntN(60), bytes.Repeat([]byte{'a' + byte(i%3)}, rng.IntN(40)))
		keys = append(keys, k)
	}
	b, sorted := kvFile(t, keys)
	tx, err := b.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	s := &snapshot{tx: tx, kv: tx.Bucket(bucketKV)}

	// Candidates: every key, its neighbours in byte order, its prefixes.
	cands := [][]byte{nil, {}, {0}, {0xff}, []byte("g/"), []byte("m/nested"), []byte("m/nested\x00"), []byte("m/nestec\xff"), []byte("zzz")}
	for _, k := range sorted {
		cands = append(cands, k, k[:len(k)-1], append(slices.Clone(k), 0), append(slices.Clone(k), 'a'))
		succ := slices.Clone(k)
		succ[len(succ)-1]++
		cands = append(cands, succ)
	}
	check := func(key []byte) {
		t.Helper()
		got, gerr := s.Get(key)
		want, werr := refGet(t, b, key)
		if !bytes.Equal(got, want) || (got == nil) != (want == nil) || (gerr == nil) != (werr == nil) {
			t.Fatalf("Get(%q) = %q, %v; bbolt: %q, %v", key, got, gerr, want, werr)
		}
	}
	// (No prefix reaches the nested bucket: Scan reports it as damage.)
	prefixes := [][]byte{[]byte("g"), []byte("g/"), []byte("g/01"), []byte("g/017/"), []byte("g/017/aa"), []byte("h")}

	var scan func(depth int) error
	scan = func(depth int) error {
		prefix := prefixes[rng.IntN(len(prefixes))]
		var after []byte
		if rng.IntN(2) == 0 {
			after = cands[rng.IntN(len(cands))]
		}
		want := refScan(b, prefix, after)
		stopAt := -1
		if rng.IntN(3) == 0 && len(want) > 0 {
			stopAt = rng.IntN(len(want))
		}
		how := rng.IntN(3) // at stopAt: ErrStop, an error, a panic
		nestAt := -1       // a scan inside this one, at one key
		if depth < 3 && len(want) > 0 && rng.IntN(2) == 0 {
			nestAt = rng.IntN(len(want))
		}
		boom := errors.New("boom")
		var seen []string
		err := s.Scan(prefix, after, func(k, v []byte) error {
			seen = append(seen, string(k))
			if want := "v:" + string(k); string(v) != want {
				t.Fatalf("scan %q after %q: value %q at %q", prefix, after, v, k)
			}
			if rng.IntN(4) == 0 {
				check(cands[rng.IntN(len(cands))])
			}
			if len(seen)-1 == nestAt {
				_ = scan(depth + 1)
			}
			if len(seen)-1 == stopAt {
				switch how {
				case 0:
					return store.ErrStop
				case 1:
					return boom
				default:
					panic("callback panics")
				}
			}
			return nil
		})
		if stopAt >= 0 {
			want = want[:stopAt+1]
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("scan %q after %q (depth %d): %d keys, want %d", prefix, after, depth, len(seen), len(want))
		}
		switch {
		case stopAt < 0 || how == 0:
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
		case how == 1:
			if !errors.Is(err, boom) {
				t.Fatalf("scan: %v, want boom", err)
			}
		default:
			if err == nil {
				t.Fatal("a callback's panic was lost")
			}
		}
		return err
	}
	for _, k := range cands {
		check(k)
	}
	for range 200 {
		_ = scan(0)
		for range 20 {
			check(cands[rng.IntN(len(cands))])
		}
	}
	// Every key after all that, in order and in reverse.
	for _, k := range sorted {
		check(k)
	}
	for _, k := range slices.Backward(sorted) {
		check(k)
	}
}

// A memory fault mid-scan (the file cut short under the map) is an error;
// once the file is whole again, the kept cursor reads as a fresh one. The
// file is laid out so that the bucket's root comes before its leaves (a
// bucket of junk written first and deleted, then the last key rewritten:
// its path is copied into the junk's freed pages), so that a cut file
// still opens the tree and the scan faults on its way.
func TestSnapshotReadsAfterAFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var sorted [][]byte
	for i := range 20000 {
		sorted = append(sorted, fmt.Appendf(nil, "g/%06d/%s", i, bytes.Repeat([]byte("x"), 40)))
	}
	for _, edit := range []func(tx *bbolt.Tx) error{
		func(tx *bbolt.Tx) error {
			junk, err := tx.CreateBucket([]byte("junk"))
			for i := 0; err == nil && i < 20000; i++ {
				err = junk.Put(fmt.Appendf(nil, "%06d", i), make([]byte, 100))
			}
			return err
		},
		func(tx *bbolt.Tx) error {
			kv, err := tx.CreateBucket(bucketKV)
			for i := 0; err == nil && i < len(sorted); i++ {
				err = kv.Put(sorted[i], sealed(sorted[i], "v:"+string(sorted[i])))
			}
			return err
		},
		func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("junk")) },
		func(tx *bbolt.Tx) error {
			k := sorted[len(sorted)-1]
			return tx.Bucket(bucketKV).Put(k, sealed(k, "v:"+string(k)))
		},
	} {
		if err := b.Update(edit); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := b.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	s := &snapshot{tx: tx, kv: tx.Bucket(bucketKV)}
	if v, err := s.Get(sorted[0]); err != nil || v == nil {
		t.Fatalf("Get before the fault: %q, %v", v, err)
	}
	// The longest cut at which the scan faults after reading some keys.
	ps := b.Info().PageSize
	faulted := false
	for cut := int(tx.Size()) - ps; cut > 0 && !faulted; cut -= 4 * ps {
		if err := os.Truncate(path, int64(cut)); err != nil {
			t.Fatal(err)
		}
		n := 0
		err := s.Scan([]byte("g/"), nil, func(_, _ []byte) error { n++; return nil })
		if err != nil && n > 0 {
			if pe := (*panicError)(nil); !errors.As(err, &pe) {
				t.Fatalf("a scan over a cut file: %v, want the fault as an error", err)
			}
			if n >= len(sorted) {
				t.Fatalf("the scan read every key (%d) of a cut file", n)
			}
			t.Logf("cut at %d of %d bytes: a fault after %d keys: %v", cut, len(whole), n, err)
			faulted = true
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(whole[cut:], int64(cut))
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !faulted {
		t.Fatal("no cut of the file made the scan fault on its way")
	}
	for i, k := range sorted {
		if i%7 != 0 {
			continue
		}
		v, err := s.Get(k)
		if err != nil || string(v) != "v:"+string(k) {
			t.Fatalf("Get(%q) after the fault: %q, %v", k, v, err)
		}
	}
	var got []string
	if err := s.Scan([]byte("g/"), nil, func(k, _ []byte) error { got = append(got, string(k)); return nil }); err != nil || len(got) != len(sorted) {
		t.Fatalf("scan after the fault: %d keys, %v; want %d", len(got), err, len(sorted))
	}
}

// Reads after Close are errors, not panics nor stale answers.
func TestSnapshotReadAfterClose(t *testing.T) {
	b, sorted := kvFile(t, [][]byte{[]byte("a"), []byte("b")})
	tx, err := b.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot{tx: tx, kv: tx.Bucket(bucketKV)}
	if v, err := s.Get(sorted[0]); err != nil || v == nil {
		t.Fatalf("Get: %q, %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(sorted[0]); err == nil {
		t.Fatalf("Get after Close: %q, no error", v)
	}
	if err := s.Scan(nil, nil, func(_, _ []byte) error { return nil }); err == nil {
		t.Fatal("Scan after Close: no error")
	}
}
