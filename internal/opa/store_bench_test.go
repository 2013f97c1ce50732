package opa_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// storeBench is the store and checks BenchmarkDecideStore decides: opened
// once per process (the open check of a 1M store takes seconds, and a
// benchmark function runs several times).
var storeBench struct {
	once   sync.Once
	db     *bolt.DB
	checks []permatrix.Check
	err    error

	// warm holds the checks decided untimed before the first timed one
	// (PERMATRIX_BENCH_WARM): other users than those timed.
	warm   []permatrix.Check
	warmed bool
}

// BenchmarkDecideStore decides the checks of a file (one JSON check a
// line, cycled) over a store file, each decision timed: p50-ns and p99-ns
// are the percentiles of one decision, steps/op its vm statements. test/bench runs it on the bench's
// store (1M assignments) and its cold set — every check another user —
// with PERMATRIX_BENCH_DB and PERMATRIX_BENCH_CHECKS; without them it is
// skipped. PERMATRIX_BENCH_WARM=N first decides the file's last N checks,
// untimed and once per process, and times only the others: a process past
// its first pass (the store's pages it maps on first touch, its heap
// grown) deciding users it never decided — a served sidecar's steady
// state, where a fresh process's first decisions carry its warm-up
// (docs/performance.md). The store is opened as serve opens it, the pages
// decisions read mapped back into memory in the background once the open
// check released them (--store-resident), and that is waited for;
// PERMATRIX_BENCH_RESIDENT=false opens it as serve --store-resident=false
// does, each page mapped by the first decision that reads it.
func BenchmarkDecideStore(b *testing.B) {
	path, checks := os.Getenv("PERMATRIX_BENCH_DB"), os.Getenv("PERMATRIX_BENCH_CHECKS")
	if path == "" || checks == "" {
		b.Skip("PERMATRIX_BENCH_DB (a store file) and PERMATRIX_BENCH_CHECKS (checks, one JSON object a line) are not set")
	}
	s := &storeBench
	s.once.Do(func() {
		o := bolt.Options{Resident: store.DocumentPrefix()}
		if r := os.Getenv("PERMATRIX_BENCH_RESIDENT"); r != "" {
			keep, err := strconv.ParseBool(r)
			if err != nil {
				s.err = fmt.Errorf("PERMATRIX_BENCH_RESIDENT=%q: want true or false", r)
				return
			}
			if !keep {
				o.Resident = nil
			}
		}
		if s.db, s.err = bolt.Open(path, o); s.err != nil {
			return
		}
		// A sidecar past its start: its pages mapped (~0.4 s at 1M; serve
		// compiles its bundle and becomes ready meanwhile).
		if s.err = s.db.WaitResident(context.Background()); s.err != nil {
			return
		}
		f, err := os.Open(checks)
		if err != nil {
			s.err = err
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() && len(s.checks) < 200000 {
			var c permatrix.Check
			if s.err = json.Unmarshal(sc.Bytes(), &c); s.err != nil {
				return
			}
			s.checks = append(s.checks, c)
		}
		if s.err = sc.Err(); s.err == nil && len(s.checks) == 0 {
			s.err = os.ErrNotExist
		}
		if w := os.Getenv("PERMATRIX_BENCH_WARM"); w != "" && s.err == nil {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 || n >= len(s.checks) {
				s.err = fmt.Errorf("PERMATRIX_BENCH_WARM=%q: want a count below the file's %d checks", w, len(s.checks))
				return
			}
			s.checks, s.warm = s.checks[:len(s.checks)-n], s.checks[len(s.checks)-n:]
		}
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
	p := compile(b, s.db, opa.WithEvaluator(opa.VM))
	ctx := context.Background()
	if !s.warmed {
		s.warmed = true
		for _, c := range s.warm {
			snap, err := s.db.View()
			if err != nil {
				b.Fatal(err)
			}
			_, err = p.Decide(ctx, snap, c)
			snap.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	took := make([]time.Duration, 0, b.N)
	steps := p.DecisionSteps()
	faults := minorFaults()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		snap, err := s.db.View()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		_, err = p.Decide(ctx, snap, s.checks[i%len(s.checks)])
		took = append(took, time.Since(start))
		snap.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	// steps/op: the vm statements of a decision, a figure no load moves
	// (a change of the policies is measured by it without a quiet machine).
	b.ReportMetric(float64(p.DecisionSteps()-steps)/float64(len(took)), "steps/op")
	// minflt/op: the page faults a decision took without I/O (Linux) — the
	// first touch of a store page since the open check released them
	// (internal/bolt), or of heap memory new to the process.
	if n := minorFaults(); n >= 0 && faults >= 0 {
		b.ReportMetric(float64(n-faults)/float64(len(took)), "minflt/op")
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}
