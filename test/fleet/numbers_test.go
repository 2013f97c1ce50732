//go:build fleetbench

// The fleet's numbers (docs/performance.md, "Fleet (etcd)"): not a test of
// correctness, and not part of `go test ./...` (build tag fleetbench). Run:
//
//	go test -count=1 -tags fleetbench ./test/fleet -run TestFleetNumbers -v -timeout 30m
//
// On a three-member etcd cluster with three sidecars (and one bbolt sidecar
// as the baseline), all on this machine's loopback, it measures:
//
//	(a) decision latency in etcd mode against bolt mode, in process and over
//	    HTTP, side by side in alternating rounds, and again with etcd down;
//	(b) propagation: a write acknowledged at sidecar A until a check without
//	    a consistency token allows it at sidecar C;
//	(c) acknowledged writes per second, 32 writers over the three sidecars,
//	    against 32 writers on one bbolt sidecar.
//
// With PERMATRIX_FLEET_PROFILE=<dir>, the sidecars run with --pprof and a
// 10 s CPU profile of sidecar A during (c) is saved in dir (sidecarA.pprof;
// go tool pprof -top <binary> dir/sidecarA.pprof).
package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// numbersUsers is the store's size: each user an analyst with a project
// grant (the workload of docs/performance.md's other sections).
const numbersUsers = 5000

// benchClient keeps enough connections for 32 writers.
var benchClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}}

// post sends a request with the admin token through benchClient.
func post(url, path, body string) (int, error) {
	req, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func seedLines() string {
	var b strings.Builder
	for i := range numbersUsers {
		fmt.Fprintf(&b, `{"subject":"user:u%d","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`+"\n", i)
		fmt.Fprintf(&b, `{"subject":"user:u%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%d"}}`+"\n", i, i%50)
	}
	return b.String()
}

func checkOf(i int) permatrix.Check {
	return permatrix.Check{Subject: fmt.Sprintf("u%d", (i*7919)%numbersUsers), System: "celonis-task-mining", Action: "view_project",
		Resource: &permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}
}

func checkBody(i int) string {
	c := checkOf(i)
	return fmt.Sprintf(`{"subject":%q,"system":%q,"action":%q,"resource":{"type":"project","id":%q}}`, c.Subject, c.System, c.Action, c.Resource.ID)
}

// latencies summarises durations.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// load runs workers closed-loop requests for d; each request is made by
// do(worker, n). It returns the completed requests' latencies and the
// count of failed ones.
func load(workers int, d time.Duration, do func(w, n int) bool) (latencies, int64) {
	var mu sync.Mutex
	var all latencies
	var failed atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine latencies
			for n := 0; time.Now().Before(end); n++ {
				start := time.Now()
				if do(w, n) {
					mine = append(mine, time.Since(start))
				} else {
					failed.Add(1)
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, failed.Load()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestFleetNumbers(t *testing.T) {
	const body = "67108864"
	t.Logf("machine: %d CPUs (GOMAXPROCS %d), %s/%s; shared with other jobs: compare ratios, not absolute numbers", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	profileDir := os.Getenv("PERMATRIX_FLEET_PROFILE")
	args := []string{"--body-limit", body}
	if profileDir != "" {
		args = append(args, "--pprof")
	}
	f := startFleet(t, 3, args...)
	bp, err := harness.StartProcess(t, bin, token, nil, "--addr", "127.0.0.1:0", "--admin-token", token,
		"--db", filepath.Join(t.TempDir(), "bolt.db"), "--body-limit", body)
	if err != nil {
		t.Fatalf("bolt sidecar: %v\n%s", err, bp.Logs())
	}
	seed := seedLines()
	for name, p := range map[string]*harness.Process{"etcd": f.sidecar(0), "bolt": bp} {
		start := time.Now()
		if code, raw := call(p, "POST", "/v1/import?chunk=1000", seed, nil); code != 200 {
			t.Fatalf("seeding %s: %d %s", name, code, raw)
		}
		t.Logf("seeded %s with %d assignments in %s", name, 2*numbersUsers, time.Since(start).Round(time.Millisecond))
	}
	code, raw := call(f.sidecar(0), "POST", "/v1/assignments", grant("seeded", "celonis-task-mining", "analyst"), nil)
	if code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	var w written
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	f.converged(w.Revision)

	propagation(t, f)
	throughput(t, f, bp, profileDir)
	decisions(t, f, bp)
}

// (b) A write acknowledged by sidecar A (0), then checks without a token at
// sidecar C (2) until one allows it. The time includes one check's round
// trip (the poll), so it is an upper bound.
func propagation(t *testing.T, f *fleet) {
	const writes = 600
	a, c := f.sidecar(0), f.sidecar(2)
	var prop, ack latencies
	for i := range writes {
		user := fmt.Sprintf("prop%d", i)
		start := time.Now()
		code, err := post(a.URL, "/v1/assignments", grant(user, "celonis-task-mining", "admin"))
		acked := time.Now()
		if err != nil || code != 201 {
			t.Fatalf("write %d at A: %d %v", i, code, err)
		}
		ack = append(ack, acked.Sub(start))
		check := fmt.Sprintf(`{"subject":%q,"system":"celonis-task-mining","action":"edit_users"}`, user)
		for {
			code, raw := call(c, "POST", "/v1/check", check, nil)
			if code == 200 && strings.Contains(string(raw), `"allow":true`) {
				break
			}
			if code != 200 {
				t.Fatalf("check at C: %d %s", code, raw)
			}
			if time.Since(acked) > 10*time.Second {
				t.Fatalf("write %d never visible at C", i)
			}
		}
		prop = append(prop, time.Since(acked))
	}
	t.Logf("(b) propagation A → C over %d sequential writes: p50 %s, p99 %s, max %s (the write itself at A: p50 %s, p99 %s)",
		writes, ms(prop.pct(0.5)), ms(prop.pct(0.99)), ms(prop.pct(1)), ms(ack.pct(0.5)), ms(ack.pct(0.99)))
}

// (c) 32 writers, each creating new assignments as fast as they are
// acknowledged: over the three sidecars, then on the one bbolt sidecar.
func throughput(t *testing.T, f *fleet, bp *harness.Process, profileDir string) {
	const writers, d = 32, 20 * time.Second
	if profileDir != "" {
		go func() {
			time.Sleep(5 * time.Second) // into the etcd run, past its start
			code, raw := call(f.sidecar(0), "GET", "/debug/pprof/profile?seconds=10", "", nil)
			if code != 200 {
				t.Errorf("profiling sidecar A: %d %.200s", code, raw)
				return
			}
			if err := os.WriteFile(filepath.Join(profileDir, "sidecarA.pprof"), raw, 0o644); err != nil {
				t.Error(err)
			}
		}()
	}
	run := func(name string, target func(w int) string) {
		l, failed := load(writers, d, func(w, n int) bool {
			code, err := post(target(w), "/v1/assignments", grant(fmt.Sprintf("%s-w%d-%d", name, w, n), "celonis-task-mining", "analyst"))
			return err == nil && code == 201
		})
		t.Logf("(c) %s: %d writers for %s: %.0f acknowledged writes/s (%d acknowledged, %d failed), latency p50 %s, p99 %s",
			name, writers, d, float64(len(l))/d.Seconds(), len(l), failed, ms(l.pct(0.5)), ms(l.pct(0.99)))
	}
	var eps []string
	for _, m := range f.cluster.Members {
		eps = append(eps, m.ClientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	revision := func() int64 {
		resp, err := cli.Get(ctx, "/ceiling/root")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}

	before := revision()
	run("etcd, 3 sidecars", func(w int) string { return f.sidecar(w % 3).URL })
	// Every etcd transaction is one revision: the writes per revision are
	// group commit's mean group (an id block reservation is a revision too).
	t.Logf("(c) etcd, 3 sidecars: %d etcd revisions during the run", revision()-before)
	run("bolt, 1 sidecar", func(int) string { return bp.URL })

	// The ceiling: etcd alone, 32 clients making the etcd requests of one
	// write (a linearizable read of one key, then a guarded transaction
	// of four puts), no permatrix in between.
	l, failed := load(writers, d, func(w, n int) bool {
		k := fmt.Sprintf("/ceiling/%d/%d/", w, n)
		if _, err := cli.Get(ctx, "/ceiling/root"); err != nil {
			return false
		}
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k+"guard"), "<", 1<<40)).
			Then(clientv3.OpPut(k+"a", "x"), clientv3.OpPut(k+"b", "x"), clientv3.OpPut(k+"guard", ""), clientv3.OpPut("/ceiling/root", "")).Commit()
		return err == nil
	})
	t.Logf("(c) etcd alone, the requests of one write: %d clients for %s: %.0f/s (%d failed), latency p50 %s, p99 %s",
		writers, d, float64(len(l))/d.Seconds(), failed, ms(l.pct(0.5)), ms(l.pct(0.99)))
}

// (a) Decision latency, etcd mode against bolt mode: in process (the
// decision point over a replica of the fleet against one over a bbolt
// file holding the same keys), then over HTTP (sidecar A against the bbolt
// sidecar); rounds alternate, the medians are compared. Last, etcd is
// stopped and etcd mode is measured again.
func decisions(t *testing.T, f *fleet, bp *harness.Process) {
	ctx := context.Background()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	es, err := etcd.Open(ctx, etcd.Options{URL: f.cluster.StoreURL(f.prefix), Replica: filepath.Join(t.TempDir(), "replica.db"), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	for deadline := time.Now().Add(time.Minute); ; {
		if snap, err := es.View(); err == nil {
			snap.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the in-process replica never loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "bolt.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	snap, err := es.View()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Copy(ctx, snap, bs, store.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	bundle, err := opa.ReadBundle(ctx, "", opa.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	service := func(b store.Backend, cache int) *pdp.Service {
		s := pdp.New(b, opa.NewEngine(b), discard, nil)
		s.SetCacheSize(cache)
		if _, err := s.Activate(ctx, bundle); err != nil {
			t.Fatal(err)
		}
		return s
	}
	inProcess := func(label string, cache int, rounds int) {
		svcs := map[string]*pdp.Service{"bolt": service(bs, cache), "etcd": service(es, cache)}
		ns := map[string][]float64{}
		for round := range rounds + 1 {
			for _, mode := range []string{"bolt", "etcd"} {
				r := testing.Benchmark(func(b *testing.B) {
					for i := range b.N {
						if _, err := svcs[mode].Check(ctx, checkOf(i)); err != nil {
							b.Fatal(err)
						}
					}
				})
				if round > 0 { // the first round warms up (and fills the cache)
					ns[mode] = append(ns[mode], float64(r.NsPerOp()))
				}
			}
		}
		t.Logf("(a) in process, %s: bolt %.0f ns/decision, etcd %.0f ns/decision (medians of %d alternating rounds: bolt %v, etcd %v): etcd/bolt = %.3f",
			label, median(ns["bolt"]), median(ns["etcd"]), rounds, ns["bolt"], ns["etcd"], median(ns["etcd"])/median(ns["bolt"]))
	}
	inProcess("decision cache off", 0, 5)
	inProcess("decision cache on", pdp.DefaultCacheSize, 5)

	overHTTP := func(label string, urls map[string]string, rounds int) {
		const workers, d = 8, 5 * time.Second
		p50, p99, rps := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
		for round := range rounds + 1 {
			for _, mode := range []string{"bolt", "etcd"} {
				url, ok := urls[mode]
				if !ok {
					continue
				}
				l, failed := load(workers, d, func(w, n int) bool {
					code, err := post(url, "/v1/check", checkBody(w*100_003+n))
					return err == nil && code == 200
				})
				if failed > 0 {
					t.Fatalf("%s: %d checks failed", mode, failed)
				}
				if round == 0 {
					continue // warm-up
				}
				p50[mode] = append(p50[mode], float64(l.pct(0.5))/1e6)
				p99[mode] = append(p99[mode], float64(l.pct(0.99))/1e6)
				rps[mode] = append(rps[mode], float64(len(l))/d.Seconds())
			}
		}
		line := fmt.Sprintf("(a) over HTTP, %s, %d connections, %d rounds of %s:", label, workers, rounds, d)
		for _, mode := range []string{"bolt", "etcd"} {
			if len(rps[mode]) > 0 {
				line += fmt.Sprintf(" %s %.0f checks/s p50 %.2f ms p99 %.2f ms (rounds: %.0f);", mode, median(rps[mode]), median(p50[mode]), median(p99[mode]), rps[mode])
			}
		}
		if len(rps["bolt"]) > 0 && len(rps["etcd"]) > 0 {
			line += fmt.Sprintf(" etcd/bolt p50 = %.3f, throughput = %.3f", median(p50["etcd"])/median(p50["bolt"]), median(rps["etcd"])/median(rps["bolt"]))
		}
		t.Log(line)
	}
	overHTTP("etcd up", map[string]string{"bolt": bp.URL, "etcd": f.sidecar(0).URL}, 3)

	// etcd down: the decisions of etcd mode do not change.
	for _, m := range f.cluster.Members {
		m.Kill()
	}
	inProcess("decision cache off, etcd down", 0, 3)
	overHTTP("etcd down", map[string]string{"bolt": bp.URL, "etcd": f.sidecar(0).URL}, 3)
}
