// Command permabench reproduces every row of docs/performance.md in one run,
// side by side on one machine: it builds permatrix, the pinned stock opa and
// a hello-world Echo server, generates the seeded dataset
// (test/bench/dataset), loads it through the API (custom roles, projects and
// memberships by concurrent writers, then the streaming chunked import with
// a single writer's latencies measured alongside), restarts the server on
// its bolt file (cold start, RSS), streams the export (RSS growth), loads
// the export into stock opa, measures decisions over HTTP with wrk (closed
// loop, hot and cold body mixes: echo, permatrix, opa) and vegeta (open
// loop at half permatrix's maximum), acknowledged writes with 32 writers
// and one, and runs the Go benchmarks. It writes results.jsonl and
// results.md (tables for docs/performance.md) and stops every server it
// started.
//
//	cd test/bench/permabench && go run . --users 500000
//
// test/bench/README.md describes the flags and phases.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/permatrix/permatrix/test/bench/dataset"
)

const token = "bench-admin-token"

type options struct {
	repo, work, out           string
	cfg                       dataset.Config
	hot                       int
	chunk, setupWriters       int
	wrkSeconds, warmupSeconds int
	wrkThreads, wrkConns      int
	openSeconds               int
	openWarmupSeconds         int
	writeSeconds, writers     int
	gobenchTime               string
	gobenchCount              int
	opaPattern, pdpPattern    string
	opaTimeout                time.Duration
	skip                      string
	pin                       bool
	openRate                  int
	keep                      bool
	importProfile             string
}

func (o options) skipped(phase string) bool {
	return slices.Contains(strings.Split(o.skip, ","), phase)
}

func main() {
	_, file, _, _ := runtime.Caller(0)
	var o options
	flag.StringVar(&o.repo, "repo", filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..")), "the permatrix repository")
	flag.StringVar(&o.work, "work", "", "work directory: binaries, dataset, bolt file, export, logs (default: a new one under $TMPDIR, removed at the end unless --keep)")
	flag.StringVar(&o.out, "out", "", "where results.jsonl and results.md go (default: test/bench/results/<date>-<users>u)")
	flag.Uint64Var(&o.cfg.Seed, "seed", 1, "the dataset's seed")
	flag.IntVar(&o.cfg.Users, "users", 20000, "users (500000 for the 1M-assignment store)")
	flag.IntVar(&o.cfg.Assignments, "assignments", 0, "assignments in the store (default 2 × users)")
	flag.IntVar(&o.cfg.Groups, "groups", 0, "groups (default users/50)")
	flag.IntVar(&o.cfg.MembersPerGroup, "members-per-group", 10, "members of each group")
	flag.IntVar(&o.cfg.CustomRoles, "custom-roles", 100, "Blue Prism custom roles")
	flag.IntVar(&o.cfg.Projects, "projects", 0, "uipath-task-mining-cloud projects (default users/100)")
	flag.IntVar(&o.hot, "hot", 500, "bodies of the hot set")
	flag.IntVar(&o.chunk, "chunk", 10000, "lines per commit of the import (POST /v1/import?chunk=)")
	flag.IntVar(&o.setupWriters, "setup-writers", 32, "concurrent writers of the roles, projects and memberships")
	flag.IntVar(&o.wrkSeconds, "wrk-seconds", 20, "seconds of each wrk run")
	flag.IntVar(&o.warmupSeconds, "warmup-seconds", 5, "seconds of wrk warm-up before each run (hot set)")
	flag.IntVar(&o.wrkThreads, "wrk-threads", 2, "wrk -t")
	flag.IntVar(&o.wrkConns, "wrk-connections", 16, "wrk -c")
	flag.IntVar(&o.openSeconds, "open-seconds", 15, "seconds of each open-loop (vegeta) run")
	flag.IntVar(&o.openWarmupSeconds, "open-warmup-seconds", 10, "seconds of the same open loop, not measured, just before each measured one (0: none): the rate's steady state, not the wake of the closed-loop runs before it")
	flag.IntVar(&o.writeSeconds, "write-seconds", 20, "seconds of each write-throughput run")
	flag.IntVar(&o.writers, "writers", 32, "concurrent writers of the write-throughput run (a second run uses one)")
	flag.StringVar(&o.gobenchTime, "gobench-time", "1s", "go test -benchtime")
	flag.IntVar(&o.gobenchCount, "gobench-count", 5, "go test -count (medians are reported)")
	flag.StringVar(&o.opaPattern, "gobench-opa", "Decide|Verdict|BaselineUnprepared", "-bench pattern of ./internal/opa (Decide includes DecideStore: the cold set over this run's store)")
	flag.StringVar(&o.pdpPattern, "gobench-pdp", "Import|Check", "-bench pattern of ./internal/pdp")
	flag.DurationVar(&o.opaTimeout, "opa-timeout", 15*time.Minute, "how long stock opa may take to load the export")
	flag.StringVar(&o.skip, "skip", "", "phases to skip, comma-separated: load (serve the permatrix.db an earlier run left in --work), restart, export, opa, http, open, writes, gobench")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.importProfile, "import-profile", "", "a directory: during the import, take a CPU profile (8 s), an execution trace (3 s) and then a heap profile of the server (serve --pprof) into it, as import.cpu.pb.gz, import.trace and import.heap.pb.gz")
	flag.BoolVar(&o.pin, "pin", false, "during the HTTP runs, pin the servers to CPU 0 and the load generators (wrk, vegeta) to the other CPUs (taskset), so that they do not take each other's cores")
	flag.IntVar(&o.openRate, "open-rate", 0, "the open-loop rate in requests/s (default: half permatrix's closed-loop req/s on each mix)")
	report := flag.String("report", "", "print the Markdown tables of a results.jsonll and exit (nothing is run)")
	busy := flag.String("trace-busy", "", "read an execution trace (--import-profile's import.trace) and print how long 0, 1, 2… goroutines ran at once and what each goroutine did while fewer ran than at most, then exit (nothing is run)")
	flag.Parse()
	if *busy != "" {
		f, err := os.Open(*busy)
		var b *Busy
		if err == nil {
			b, err = traceBusy(f)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "permabench:", err)
			os.Exit(1)
		}
		fmt.Print(b)
		return
	}
	if *report != "" {
		raw, err := os.ReadFile(*report)
		var r Results
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "permabench:", err)
			os.Exit(1)
		}
		fmt.Print(markdown(&r))
		return
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "interrupted: stopping the servers")
		stopAll()
		os.Exit(130)
	}()

	b := &bench{o: o, res: &Results{}}
	err := b.run()
	stopAll()
	if err != nil {
		b.res.Error = err.Error()
		fmt.Fprintln(os.Stderr, "permabench:", err)
	}
	if werr := b.write(); werr != nil {
		fmt.Fprintln(os.Stderr, "permabench: writing results:", werr)
		os.Exit(1)
	}
	if !o.keep && b.tmpWork {
		os.RemoveAll(b.o.work)
	}
	if err != nil {
		os.Exit(1)
	}
}

type bench struct {
	o       options
	res     *Results
	set     *dataset.Set
	tmpWork bool
	bin     struct{ permatrix, opa, hello string }
	files   struct{ importFile, hot, cold, export, db string }
	logs    string
	pm      *proc // the permatrix server
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) run() error {
	o := &b.o
	var err error
	if o.repo, err = filepath.Abs(o.repo); err != nil {
		return err
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "permabench-"); err != nil {
			return err
		}
		b.tmpWork = true
	}
	if o.out == "" {
		o.out = filepath.Join(o.repo, "test", "bench", "results", fmt.Sprintf("%s-%du", time.Now().Format("2006-01-02T1504"), o.cfg.Users))
	}
	b.logs = filepath.Join(o.work, "logs")
	for _, d := range []string{o.work, b.logs, o.out, filepath.Join(o.work, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	b.res.Machine = machine(o.repo)
	b.res.Started = time.Now().UTC().Format(time.RFC3339)
	b.res.Flags = os.Args[1:]
	b.logf("work %s, results %s", o.work, o.out)
	defer func() { b.res.LoadAvgEnd = loadavg(); b.res.Finished = time.Now().UTC().Format(time.RFC3339) }()

	steps := []struct {
		name string
		f    func() error
	}{
		{"build", b.build}, {"dataset", b.generate}, {"load", b.load}, {"restart", b.restart},
		{"export", b.export}, {"http", b.http}, {"writes", b.writes}, {"stop", b.stopServers}, {"gobench", b.gobench},
	}
	for _, s := range steps {
		if o.skipped(s.name) {
			b.logf("%s: skipped", s.name)
			continue
		}
		b.logf("%s …", s.name)
		if err := s.f(); err != nil {
			if errors.Is(err, errSkipped) {
				continue
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// build builds permatrix and the hello-world floor from the repository and
// the stock opa pinned in test/tools.
func (b *bench) build() error {
	dir := filepath.Join(b.o.work, "bin")
	b.bin.permatrix, b.bin.opa, b.bin.hello = filepath.Join(dir, "permatrix"), filepath.Join(dir, "opa"), filepath.Join(dir, "hello")
	if err := run("build-permatrix", b.o.repo, b.logs, nil, "go", "build", "-o", b.bin.permatrix, "./cmd/permatrix"); err != nil {
		return err
	}
	if err := run("build-hello", b.o.repo, b.logs, nil, "go", "build", "-o", b.bin.hello, "./test/bench/hello"); err != nil {
		return err
	}
	if b.o.skipped("opa") {
		return nil
	}
	return run("build-opa", filepath.Join(b.o.repo, "test", "tools"), b.logs, []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"},
		"go", "build", "-o", b.bin.opa, "github.com/open-policy-agent/opa")
}

// generate writes the import, the hot and the cold bodies.
func (b *bench) generate() error {
	start := time.Now()
	s, err := dataset.New(b.o.cfg, filepath.Join(b.o.repo, "systems"))
	if err != nil {
		return err
	}
	b.set = s
	b.files.importFile = filepath.Join(b.o.work, "import.ndjson")
	b.files.hot = filepath.Join(b.o.work, "hot.ndjson")
	b.files.cold = filepath.Join(b.o.work, "cold.ndjson")
	write := func(path string, f func(io.Writer) error) (int64, error) {
		out, err := os.Create(path)
		if err != nil {
			return 0, err
		}
		if err := f(out); err != nil {
			out.Close()
			return 0, err
		}
		st, _ := out.Stat()
		return st.Size(), out.Close()
	}
	size, err := write(b.files.importFile, func(w io.Writer) error { _, err := s.WriteImport(w); return err })
	if err != nil {
		return err
	}
	hot := s.HotUsers(b.o.hot)
	if _, err := write(b.files.hot, func(w io.Writer) error { return s.WriteChecks(w, hot) }); err != nil {
		return err
	}
	// The cold set: every user once, the hot users last.
	all := s.HotUsers(s.Users)
	cold := append(all[len(hot):], all[:len(hot)]...)
	if _, err := write(b.files.cold, func(w io.Writer) error { return s.WriteChecks(w, cold) }); err != nil {
		return err
	}
	b.res.Dataset = DatasetInfo{Seed: s.Seed, Users: s.Users, Groups: s.Groups, Memberships: s.Groups * s.MembersPerGroup,
		CustomRoles: len(s.Roles()), Projects: s.Projects, Assignments: s.Assignments, ImportLines: s.Lines(),
		ImportBytes: size, HotBodies: len(hot), ColdBodies: len(cold), Seconds: time.Since(start).Seconds()}
	return nil
}

func (b *bench) startPermatrix(name string) error {
	addr := freeAddr()
	args := []string{"serve", "--addr", addr, "--db", b.files.db, "--admin-token", token}
	if b.o.importProfile != "" {
		args = append(args, "--pprof")
	}
	p, err := startProc(name, b.o.repo, b.logs, b.bin.permatrix, addr, args...)
	if err != nil {
		return err
	}
	b.pm = p
	return nil
}

func (b *bench) target() dataset.Target { return dataset.Target{URL: b.pm.url, Token: token} }

// load starts permatrix on a new bolt file, writes the roles, projects and
// memberships, then imports the assignments while one writer writes.
func (b *bench) load() error {
	b.files.db = filepath.Join(b.o.work, "permatrix.db")
	_ = os.Remove(b.files.db)
	if err := b.startPermatrix("permatrix-load"); err != nil {
		return err
	}
	if _, err := b.pm.waitOK("/health/ready", time.Minute); err != nil {
		return err
	}
	ctx := context.Background()
	sr, err := b.set.Setup(ctx, b.target(), b.o.setupWriters)
	if err != nil {
		return err
	}
	b.res.Setup = sr
	b.logf("setup: %d roles, %d projects, %d memberships in %.1f s (%.0f writes/s)", sr.Roles, sr.Projects, sr.Memberships, sr.Seconds, sr.WritesPerSecond)

	f, err := os.Open(b.files.importFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	done := make(chan struct{})
	// The single writer: one write every ~100 ms on users outside the
	// dataset, for as long as the import runs.
	var probe struct {
		lat  []time.Duration
		errs int
		err  string
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 2 * time.Minute}
		next := time.Now()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-time.After(time.Until(next)):
			}
			d, err := postAssignment(ctx, c, b.pm.url, token, fmt.Sprintf("probe-%d", n))
			if err != nil {
				probe.errs++
				if probe.err == "" {
					probe.err = err.Error()
				}
			} else {
				probe.lat = append(probe.lat, d)
			}
			next = next.Add(100 * time.Millisecond)
			if now := time.Now(); next.Before(now) {
				next = now
			}
		}
	})
	// Progress: the lines sent, and those the server has committed
	// (/metrics), every second. A tenth's rate is of the lines committed:
	// the lines sent run ahead by what the server holds (its read-ahead,
	// the socket's buffers, the chunks being judged), so the first tenth
	// sent went at twice the rate of the rest and the last at half.
	var progress []Progress
	committedBefore := committedLines(b.pm.url)
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress = append(progress, Progress{Seconds: time.Since(start).Seconds(), Lines: int(cr.lines.Load()),
					Committed: committedLines(b.pm.url) - committedBefore, RSSMiB: b.pm.memory().RSS, AnonMiB: b.pm.memory().Anon})
			}
		}
	})
	smp := b.pm.sample(250 * time.Millisecond)
	if b.o.importProfile != "" {
		wg.Go(func() { b.profileImport(done) })
	}
	ir, err := dataset.Import(ctx, b.target(), b.o.chunk, cr)
	secs := time.Since(start).Seconds()
	close(done)
	wg.Wait()
	progress = append(progress, Progress{Seconds: secs, Lines: int(cr.lines.Load()), Committed: committedLines(b.pm.url) - committedBefore,
		RSSMiB: b.pm.memory().RSS, AnonMiB: b.pm.memory().Anon})
	rssStart, rssPeak := smp.stop()
	imp := &ImportInfo{Chunk: b.o.chunk, Lines: b.set.Lines(), Seconds: secs, MemoryBefore: rssStart, MemoryPeak: rssPeak,
		Progress: progress, Probe: summarize(probe.lat, probe.errs), ProbeFirstError: probe.err}
	b.res.Import = imp
	if err != nil {
		return err
	}
	imp.Imported, imp.Chunks, imp.Revision = ir.Imported, ir.Chunks, ir.Revision
	imp.PerSecond = float64(ir.Imported) / secs
	imp.Deciles = deciles(progress, imp.Lines)
	b.res.RSS.AfterImport = b.pm.memory()
	b.logf("import: %d lines in %.1f s (%.0f/s), peak RSS %.0f MiB; single writer p50 %.1f ms p99 %.1f ms max %.1f ms (%d writes, %d errors)",
		ir.Imported, secs, imp.PerSecond, rssPeak.RSS, imp.Probe.P50ms, imp.Probe.P99ms, imp.Probe.MaxMs, imp.Probe.Count, imp.Probe.Errors)
	return nil
}

// profileImport takes a CPU profile, an execution trace and a heap
// profile of the server while the import runs (--import-profile): what the
// import's stages cost, where its goroutines wait (go tool pprof; go tool
// trace -pprof=sync|sched|syscall) and what its heap holds. Each runs its length: one outlasting the
// import shows the server after it too, and the load phase waits for it.
func (b *bench) profileImport(done <-chan struct{}) {
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second): // past the first chunks
	}
	if err := os.MkdirAll(b.o.importProfile, 0o755); err != nil {
		b.logf("import profile: %v", err)
		return
	}
	for _, p := range []struct{ path, file string }{
		{"/debug/pprof/profile?seconds=8", "import.cpu.pb.gz"},
		{"/debug/pprof/trace?seconds=3", "import.trace"},
		{"/debug/pprof/heap", "import.heap.pb.gz"}, // what the heap holds 13 s in
	} {
		req, _ := http.NewRequest(http.MethodGet, b.pm.url+p.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.logf("import profile: %v", err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.logf("import profile %s: %d %v %.200s", p.path, resp.StatusCode, err, body)
			return
		}
		path := filepath.Join(b.o.importProfile, p.file)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			b.logf("import profile: %v", err)
			return
		}
		b.logf("import profile: %s (%d bytes)", path, len(body))
	}
}

type countingReader struct {
	r     io.Reader
	lines atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.lines.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
	return n, err
}

// deciles is the import's rate over each tenth of its lines committed,
// from the progress samples.
func deciles(ps []Progress, total int) []float64 {
	var out []float64
	prevT, prevL := 0.0, 0
	k := 1
	for _, p := range ps {
		for k <= 10 && p.Committed >= total*k/10 {
			if p.Seconds > prevT {
				out = append(out, float64(p.Committed-prevL)/(p.Seconds-prevT))
			}
			prevT, prevL = p.Seconds, p.Committed
			k++
		}
	}
	return out
}

// committedLines is the lines the server's imports have committed
// (permatrix_import_lines_total, every outcome), -1 if /metrics does not
// say.
func committedLines(url string) int {
	res, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return -1
	}
	n, found := 0, false
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, "permatrix_import_lines_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			n, found = n+int(f), true
		}
	}
	if !found {
		return -1
	}
	return n
}

// restart stops the server (SIGTERM) and starts it again on the same file:
// process start → /health/ready 200, and its memory once idle.
//
// With the load phase skipped (--skip load), the file of an earlier run in
// --work is served: the dataset must be the same (same flags and seed).
func (b *bench) restart() error {
	r := &RestartInfo{}
	b.res.Restart = r
	b.files.db = filepath.Join(b.o.work, "permatrix.db")
	if b.pm != nil {
		r.ShutdownSeconds = b.pm.stop(time.Minute).Seconds()
	} else if _, err := os.Stat(b.files.db); err != nil {
		return fmt.Errorf("no store to restart on (--skip load needs the permatrix.db of an earlier run in --work): %w", err)
	}
	if st, err := os.Stat(b.files.db); err == nil {
		r.FileMiB = float64(st.Size()) / (1 << 20)
	}
	// First from a cold page cache: the start of a node whose file the
	// kernel no longer caches (a reboot, a host that reclaimed idle pages).
	if err := dropCaches(); err != nil {
		r.ColdNote = "not measured (" + err.Error() + ")"
	} else {
		if err := b.startPermatrix("permatrix-cold"); err != nil {
			return err
		}
		d, err := b.pm.waitOK("/health/ready", 5*time.Minute)
		if err != nil {
			return err
		}
		r.ColdReadySeconds = d.Seconds()
		b.pm.stop(time.Minute)
		b.logf("restart: ready in %.2f s from a cold page cache", r.ColdReadySeconds)
	}
	if err := b.startPermatrix("permatrix"); err != nil {
		return err
	}
	d, err := b.pm.waitOK("/health/ready", 5*time.Minute)
	if err != nil {
		return err
	}
	r.ReadySeconds = d.Seconds()
	time.Sleep(2 * time.Second)
	b.res.RSS.AfterStart = b.pm.memory()
	b.logf("restart: ready in %.2f s, RSS %.0f MiB (anon %.0f MiB; file %.0f MiB)", r.ReadySeconds, b.res.RSS.AfterStart.RSS, b.res.RSS.AfterStart.Anon, r.FileMiB)
	return nil
}

// dropCaches empties the kernel's page cache (sync, then
// /proc/sys/vm/drop_caches): root only, Linux only.
func dropCaches() error {
	if err := exec.Command("sync").Run(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("dropping the page cache needs root: %w", err)
	}
	return nil
}

// export streams GET /v1/export to a file (stock opa's data), sampling the
// server's RSS.
func (b *bench) export() error {
	b.files.export = filepath.Join(b.o.work, "export.json")
	out, err := os.Create(b.files.export)
	if err != nil {
		return err
	}
	defer out.Close()
	runtime.GC()
	smp := b.pm.sample(20 * time.Millisecond)
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, b.pm.url+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		smp.stop()
		return err
	}
	n, err := io.Copy(out, resp.Body)
	resp.Body.Close()
	secs := time.Since(start).Seconds()
	first, peak := smp.stop()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("export: %d", resp.StatusCode)
	}
	b.res.Export = &ExportInfo{Bytes: n, Seconds: secs, Before: first, Peak: peak, GrowthMiB: peak.RSS - first.RSS, AnonGrowthMiB: peak.Anon - first.Anon}
	b.logf("export: %.0f MB in %.1f s, RSS %.0f → peak %.0f MiB (anon %.0f → %.0f MiB)", float64(n)/1e6, secs, first.RSS, peak.RSS, first.Anon, peak.Anon)
	return nil
}

// stopServers stops every server before the Go benchmarks.
func (b *bench) stopServers() error {
	stopAll()
	return nil
}

func (b *bench) gobench() error {
	// BenchmarkDecideStore decides the cold set over this run's store
	// (skipped when there is none: --skip load without a store).
	var storeEnv []string
	if _, err := os.Stat(b.files.db); err == nil && b.files.cold != "" {
		storeEnv = []string{"PERMATRIX_BENCH_DB=" + b.files.db, "PERMATRIX_BENCH_CHECKS=" + b.files.cold}
	}
	for _, g := range []struct {
		pkg, pattern string
		env          []string
	}{{"./internal/opa", b.o.opaPattern, storeEnv}, {"./internal/pdp", b.o.pdpPattern, nil}} {
		b.logf("go test %s -bench '%s' -benchtime %s -count %d", g.pkg, g.pattern, b.o.gobenchTime, b.o.gobenchCount)
		bs, err := goBench(b.o.repo, b.logs, g.env, g.pkg, g.pattern, b.o.gobenchTime, b.o.gobenchCount)
		if err != nil {
			return err
		}
		b.res.GoBench = append(b.res.GoBench, bs...)
	}
	return nil
}

// write writes results.jsonll and results.md.
func (b *bench) write() error {
	if b.o.out == "" {
		return nil
	}
	// JSON Lines, one run on one line: `opa test .` (and the Rego tests
	// of `go test ./...`) load every *.json below the repository root as
	// data, and two runs' results would collide there.
	raw, err := json.Marshal(b.res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.o.out, "results.jsonl"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(b.res)
	if err := os.WriteFile(filepath.Join(b.o.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Println(md)
	b.logf("results: %s", b.o.out)
	return nil
}

// machine says what the numbers were measured on.
func machine(repo string) Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvgStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%f", &kb)
			}
		}
		m.MemoryGiB = kb / (1 << 20)
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		m.Dirty = len(bytes.TrimSpace(out)) > 0
	}
	if out, err := exec.Command("wrk", "--version").CombinedOutput(); err == nil || len(out) > 0 {
		m.Wrk = strings.SplitN(strings.TrimSpace(string(out)), " Copyright", 2)[0]
	}
	return m
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
