//go:build linux

package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
)

// TestReleaseWhileWritersGrowTheFile: every scanning snapshot releases the
// map's pages when it closes (bulkScan 1) while writers grow the file —
// bbolt remaps it, at a new address and size — and other readers read it;
// on a primary and on a replica (no fsync). Every read finds every value
// it should, intact (unseal checks each record's checksum); nothing
// deadlocks or faults. Run it with -race too.
func TestReleaseWhileWritersGrowTheFile(t *testing.T) {
	defer bolt.SetBulkScan(1)()
	defer bolt.SetInitialMmapSize(0)() // bbolt's: remapped as the file grows
	for _, replica := range []bool{false, true} {
		t.Run(fmt.Sprintf("replica=%v", replica), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "grow.db")
			db, err := bolt.Open(path, bolt.Options{Replica: replica, Source: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 2000+i%3000) }
			key := func(i int) []byte { return store.Key("d", "projects", "sys", fmt.Sprintf("p%07d", i)) }
			var written atomic.Int64 // keys 0..written-1 are committed
			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			wg.Add(1)
			go func() { // the writer: ~40 MB in batches; the file grows, bbolt remaps it (its map doubles)
				defer wg.Done()
				ctx := context.Background()
				for n := 0; n < 16000; {
					var ops []store.Op
					for range 200 {
						ops = append(ops, store.Op{Key: key(n), Value: value(n)})
						n++
					}
					var err error
					if replica {
						err = db.Apply(db.Revision()+1, ops, nil)
					} else {
						_, err = db.Commit(ctx, &store.Batch{Base: db.Revision(), Ops: ops})
					}
					if err != nil {
						errs <- err
						return
					}
					written.Store(int64(n))
				}
			}()
			for r := range 3 { // readers: scans (each releasing on Close) and gets
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						want := written.Load()
						snap, err := db.View()
						if err != nil {
							errs <- err
							return
						}
						if r == 0 || i%2 == 0 {
							n := int64(0)
							err = snap.Scan(store.Key("d", "projects"), nil, func(k, v []byte) error {
								var j int
								fmt.Sscanf(string(k[len(k)-7:]), "%07d", &j)
								if !bytes.Equal(v, value(j)) {
									return fmt.Errorf("key %d: a value of %d bytes, want %d", j, len(v), len(value(j)))
								}
								n++
								return nil
							})
							if err == nil && n < want {
								err = fmt.Errorf("a scan found %d keys, %d were committed before it", n, want)
							}
						} else if want > 0 {
							j := int(want - 1)
							var v []byte
							if v, err = snap.Get(key(j)); err == nil && !bytes.Equal(v, value(j)) {
								err = fmt.Errorf("get %d: %d bytes", j, len(v))
							}
						}
						if cerr := snap.Close(); err == nil {
							err = cerr
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			deadline := time.Now().Add(60 * time.Second)
			for written.Load() < 16000 && time.Now().Before(deadline) && len(errs) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			close(stop)
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("readers or writer stuck (deadlock?)")
			}
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if w := written.Load(); w < 16000 {
				t.Fatalf("the writer wrote %d keys of 16000 in time", w)
			}
		})
	}
}
