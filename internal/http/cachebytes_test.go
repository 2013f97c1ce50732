package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// The decision cache is bounded in entries and in bytes: a check may
// assert up to 256 groups, named within the cache key's 1 KiB, and its
// decision reads a store unit for each, kept with the entry. Such entries
// were some 18 KiB each (1.8 GB at the default 100,000 entries, from
// checks that need no token); the entries now hold at most 2 KiB each on
// average, the least recently used evicted past it. Ordinary checks are
// still kept and answered from the cache.
func TestDecisionCacheBoundedInBytes(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	const size = 1000
	svc.SetCacheSize(size)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	h := permhttp.NewServer(svc, permhttp.Config{Logger: log}).Handler()

	groups := make([]string, permatrix.MaxAssertedGroups)
	for i := range groups {
		groups[i] = fmt.Sprintf("%02x", i)
	}
	batch := func(tag string, from, to int, groups []string) {
		t.Helper()
		var checks []map[string]any
		for j := from; j < to; j++ {
			checks = append(checks, map[string]any{"subject": fmt.Sprintf("%s%d", tag, j),
				"system": "celonis-task-mining", "action": "edit_users", "groups": groups})
		}
		body, _ := json.Marshal(map[string]any{"checks": checks})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/check/batch", bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("batch: %d %s", rec.Code, rec.Body.String())
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	// Ordinary checks: kept the second time, answered from the cache the third.
	for range 3 {
		batch("plain", 0, 500, nil)
	}
	st := svc.CacheStats()
	if st.Entries != 500 || st.Hits < 500 {
		t.Fatalf("ordinary checks: %+v, want 500 entries and 500 hits", st)
	}
	t.Logf("ordinary entries: %d bytes each", st.Bytes/int64(st.Entries))

	before := heap()
	const n = 2 * size
	for i := 0; i < n; i += 250 {
		batch("many", i, i+250, groups)
		batch("many", i, i+250, groups) // the second time, kept
	}
	grew := int64(heap()) - int64(before)
	st = svc.CacheStats()
	t.Logf("after %d checks asserting %d groups: %+v; heap grew %.1f MiB", n, len(groups), st, float64(grew)/(1<<20))
	if limit := int64(size * 2 << 10); st.Bytes > limit {
		t.Errorf("the cache holds %d bytes, over its bound of %d", st.Bytes, limit)
	}
	if grew > 6<<20 {
		t.Errorf("heap grew %.1f MiB with a cache of %d entries (a bound of 2 MiB)", float64(grew)/(1<<20), size)
	}
}
