package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/permatrix/permatrix/test/bench/dataset"
)

// Results is everything one run measured (results.jsonl).
type Results struct {
	Machine  Machine             `json:"machine"`
	Started  string              `json:"started"`
	Finished string              `json:"finished"`
	Flags    []string            `json:"flags"`
	Error    string              `json:"error,omitempty"`
	Dataset  DatasetInfo         `json:"dataset"`
	Setup    dataset.SetupResult `json:"setup"`
	Import   *ImportInfo         `json:"import,omitempty"`
	Restart  *RestartInfo        `json:"restart,omitempty"`
	Export   *ExportInfo         `json:"export,omitempty"`
	OPA      *OPAInfo            `json:"opa,omitempty"`
	HTTP     *HTTPInfo           `json:"http,omitempty"`
	Writes   []Writes            `json:"writes,omitempty"`
	// The permatrix server's memory after the import, after the restart
	// (idle), and after the HTTP and write runs (its VmHWM: the peak since
	// the restart).
	RSS struct {
		AfterImport memory `json:"after_import"`
		AfterStart  memory `json:"after_start"`
		AfterLoad   memory `json:"after_load"`
	} `json:"memory"`
	GoBench    []GoBench `json:"gobench,omitempty"`
	LoadAvgEnd string    `json:"loadavg_end"`
}

// Machine is where and on what the run was made.
type Machine struct {
	NProc        int     `json:"nproc"`
	CPU          string  `json:"cpu"`
	MemoryGiB    float64 `json:"memory_gib"`
	Kernel       string  `json:"kernel"`
	GoVersion    string  `json:"go"`
	Wrk          string  `json:"wrk"`
	Commit       string  `json:"commit"`
	Dirty        bool    `json:"dirty"`
	LoadAvgStart string  `json:"loadavg_start"`
}

// DatasetInfo is the generated dataset's size.
type DatasetInfo struct {
	Seed        uint64  `json:"seed"`
	Users       int     `json:"users"`
	Groups      int     `json:"groups"`
	Memberships int     `json:"memberships"`
	CustomRoles int     `json:"custom_roles"`
	Projects    int     `json:"projects"`
	Assignments int     `json:"assignments"`
	ImportLines int     `json:"import_lines"`
	ImportBytes int64   `json:"import_bytes"`
	HotBodies   int     `json:"hot_bodies"`
	ColdBodies  int     `json:"cold_bodies"`
	Seconds     float64 `json:"seconds"`
}

// Progress is one sample of the import: lines the server has read so far
// (counted as the client sends them: ahead of the commits by at most the
// socket buffers) and the server's RSS.
type Progress struct {
	Seconds   float64 `json:"s"`
	Lines     int     `json:"lines"`     // sent
	Committed int     `json:"committed"` // committed by the server (permatrix_import_lines_total)
	RSSMiB    float64 `json:"rss_mib"`
	AnonMiB   float64 `json:"anon_mib"`
}

// ImportInfo is the streaming import's figures.
type ImportInfo struct {
	Chunk           int        `json:"chunk"`
	Lines           int        `json:"lines"`
	Imported        int        `json:"imported"`
	Chunks          int        `json:"chunks"`
	Revision        uint64     `json:"revision"`
	Seconds         float64    `json:"seconds"`
	PerSecond       float64    `json:"assignments_per_second"`
	Deciles         []float64  `json:"rate_per_tenth"` // lines/s over each tenth of the import, committed
	MemoryBefore    memory     `json:"memory_before"`
	MemoryPeak      memory     `json:"memory_peak"`
	Probe           Latency    `json:"single_writer"` // one write every ~100 ms during the import
	ProbeFirstError string     `json:"single_writer_first_error,omitempty"`
	Progress        []Progress `json:"progress"`
}

// RestartInfo is the cold start on the loaded file.
type RestartInfo struct {
	ShutdownSeconds float64 `json:"shutdown_seconds"`
	ReadySeconds    float64 `json:"ready_seconds"` // process start → /health/ready 200
	FileMiB         float64 `json:"file_mib"`
	// ColdReadySeconds is the same from a cold page cache (the kernel's
	// caches dropped first: root only); ColdNote says why it was not
	// measured.
	ColdReadySeconds float64 `json:"cold_ready_seconds,omitempty"`
	ColdNote         string  `json:"cold_note,omitempty"`
}

// ExportInfo is GET /v1/export streamed to a file.
type ExportInfo struct {
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	Before        memory  `json:"memory_before"`
	Peak          memory  `json:"memory_peak"`
	GrowthMiB     float64 `json:"rss_growth_mib"`
	AnonGrowthMiB float64 `json:"anon_growth_mib"`
}

// OPAInfo is stock opa loading the export.
type OPAInfo struct {
	ExportBytes     int64   `json:"export_bytes"`
	Loaded          bool    `json:"loaded"`
	Note            string  `json:"note,omitempty"`
	LoadSeconds     float64 `json:"load_seconds"` // process start → /health 200
	RSSMiB          float64 `json:"rss_mib"`
	RSSPeakLoadMiB  float64 `json:"rss_peak_load_mib"`
	RSSAfterLoadMiB float64 `json:"rss_after_load_mib"`
	AgreeOf100      int     `json:"agree_of_100"` // hot checks answered with the same allow as permatrix
}

// HTTPInfo is the decisions over HTTP.
type HTTPInfo struct {
	Pinned      string     `json:"pinned,omitempty"`
	Threads     int        `json:"wrk_threads"`
	Connections int        `json:"wrk_connections"`
	Wrk         []WrkRun   `json:"wrk"`
	Open        []OpenLoop `json:"open_loop"`
}

// --- Markdown

func f0(v float64) string { return group(fmt.Sprintf("%.0f", v)) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// group puts thin spaces between thousands, as docs/performance.md does.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	out = append([]string{s}, out...)
	r := strings.Join(out, " ")
	if neg {
		r = "-" + r
	}
	return r
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *Results) wrk(mix, target string) *WrkRun {
	if r.HTTP == nil {
		return nil
	}
	for i := range r.HTTP.Wrk {
		if r.HTTP.Wrk[i].Mix == mix && r.HTTP.Wrk[i].Target == target {
			return &r.HTTP.Wrk[i]
		}
	}
	return nil
}

func (r *Results) open(mix, target string) *OpenLoop {
	if r.HTTP == nil {
		return nil
	}
	for i := range r.HTTP.Open {
		if r.HTTP.Open[i].Mix == mix && r.HTTP.Open[i].Target == target {
			return &r.HTTP.Open[i]
		}
	}
	return nil
}

// markdown is the run's tables for docs/performance.md.
func markdown(r *Results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	dirty := ""
	if m.Dirty {
		dirty = " (with uncommitted changes)"
	}
	w("Run of %s on %d cores (%s), %.0f GiB, %s; commit `%.12s`%s; load average %s at the start, %s at the end.\n",
		r.Started, m.NProc, m.CPU, m.MemoryGiB, m.GoVersion, m.Commit, dirty, m.LoadAvgStart, r.LoadAvgEnd)
	d := r.Dataset
	w("Dataset (seed %d): %s users, %s groups with %s memberships, %d Blue Prism custom roles, %s UiPath projects, **%s assignments** (%s import lines, %.0f MB).\n",
		d.Seed, f0(float64(d.Users)), f0(float64(d.Groups)), f0(float64(d.Memberships)), d.CustomRoles, f0(float64(d.Projects)),
		f0(float64(d.Assignments)), f0(float64(d.ImportLines)), float64(d.ImportBytes)/1e6)
	w("Flags: `%s`.\n", strings.Join(r.Flags, " "))
	if r.Error != "" {
		w("\n**The run stopped early:** %s\n", r.Error)
	}

	w("\n| # | target | measured | met | ratio / baseline | command |\n|---|---|---|---|---|---|\n")
	if im := r.Import; im != nil {
		w("| 1 | import ≥ 100 000 assignments/s | %s/s (%s lines in %s s, chunk %d) | %s | rate per tenth committed: %s | `run.sh` (load) |\n",
			f0(im.PerSecond), f0(float64(im.Imported)), f1(im.Seconds), im.Chunk, met(im.PerSecond >= 100000), joinF(im.Deciles))
		w("| 1 | single writes during the import p99 ≤ 1 s | p50 %s ms, p99 %s ms, max %s ms (%d writes, %d errors) | %s | | `run.sh` (load) |\n",
			f1(im.Probe.P50ms), f1(im.Probe.P99ms), f1(im.Probe.MaxMs), im.Probe.Count, im.Probe.Errors, met(im.Probe.Count > 0 && im.Probe.Errors == 0 && im.Probe.P99ms <= 1000))
	}
	if rs := r.Restart; rs != nil {
		cold := "from a cold page cache: " + rs.ColdNote
		if rs.ColdReadySeconds > 0 {
			cold = "from a cold page cache (caches dropped): " + f2(rs.ColdReadySeconds) + " s"
		}
		w("| 2 | start → /health/ready ≤ 5 s | %s s (bolt file %s MiB) | %s | %s | `run.sh` (restart) |\n", f2(rs.ReadySeconds), f0(rs.FileMiB), met(rs.ReadySeconds <= 5), cold)
	}
	if s, l := r.RSS.AfterStart, r.RSS.AfterLoad; s.RSS > 0 {
		worst := max(s.RSS, l.RSS, l.HWM)
		w("| 2 | steady RSS ≤ 1 GiB | %s MiB after start (heap %s MiB + file-backed %s MiB), %s MiB after the load runs (heap %s MiB; peak RSS %s MiB) | %s | | `run.sh` (restart, http, writes) |\n",
			f0(s.RSS), f0(s.Anon), f0(s.File), f0(l.RSS), f0(l.Anon), f0(l.HWM), met(worst <= 1024))
	}
	if e := r.Export; e != nil {
		w("| 2 | `GET /v1/export` in constant memory | RSS +%s MiB (heap +%s MiB) while streaming %s MB in %s s | %s | | `run.sh` (export) |\n",
			f0(e.GrowthMiB), f0(e.AnonGrowthMiB), f0(float64(e.Bytes)/1e6), f1(e.Seconds), met(e.AnonGrowthMiB < 64))
	}
	for _, gb := range r.GoBench {
		// The serving evaluator's rows (topdown's are in the Go benchmarks' table).
		if (gb.Name == "BenchmarkDecide" || strings.HasPrefix(gb.Name, "BenchmarkDecide/")) && !strings.Contains(gb.Name, "evaluator=topdown") {
			ns := gb.Median["ns/op"]
			w("| 3 | uncached decision in-process p50 ≤ 25 µs | %s µs/op (`%s`, median of %d; the benchmark's store, not 1M) | %s | | `go test ./internal/opa -run '^$' -bench Decide` |\n",
				f1(ns/1000), strings.TrimPrefix(gb.Name, "Benchmark"), gb.Runs, met(ns <= 25000))
		}
	}
	for _, gb := range r.GoBench {
		if gb.Name == "BenchmarkDecideStore" {
			p50 := gb.Median["p50-ns"]
			w("| 3 | uncached decision in-process p50 ≤ 25 µs, at 1M | p50 %s µs, p99 %s µs, mean %s µs (`DecideStore`: this run's store and cold set, every check another user; median of %d) | %s | | `PERMATRIX_BENCH_DB=… PERMATRIX_BENCH_CHECKS=… go test ./internal/opa -run '^$' -bench DecideStore` |\n",
				f1(p50/1000), f1(gb.Median["p99-ns"]/1000), f1(gb.Median["ns/op"]/1000), gb.Runs, met(p50 <= 25000))
		}
	}
	for _, gb := range r.GoBench {
		if strings.Contains(gb.Name, "cache=hit") {
			ns := gb.Median["ns/op"]
			w("| 4 | cached decision ≤ 2 µs | %s µs/op (`%s`, median of %d) | %s | | `go test ./internal/pdp -run '^$' -bench Check` |\n", f2(ns/1000), strings.TrimPrefix(gb.Name, "Benchmark"), gb.Runs, met(ns <= 2000))
		}
	}
	for _, mix := range []string{"hot", "cold"} {
		p, e, o := r.wrk(mix, "permatrix"), r.wrk(mix, "echo"), r.wrk(mix, "opa")
		if p == nil {
			continue
		}
		want := 0.60
		if mix == "cold" {
			want = 0.30
		}
		note := ""
		if p.Repeated {
			note = " (more requests than users: bodies repeated, so not all cold)"
		}
		if e != nil && e.RPS > 0 {
			w("| 5 | %s set: permatrix ≥ %.0f %% of hello-world Echo | %s req/s vs %s req/s%s | %s | **%.0f %%** | `run.sh` (http) |\n",
				mix, want*100, f0(p.RPS), f0(e.RPS), note, met(p.RPS/e.RPS >= want), 100*p.RPS/e.RPS)
		}
		if o != nil && o.RPS > 0 {
			w("| 5 | %s set: permatrix ≥ 2× stock opa | %s req/s vs %s req/s%s | %s | **%.2f×** | `run.sh` (http) |\n", mix, f0(p.RPS), f0(o.RPS), note, met(p.RPS/o.RPS >= 2), p.RPS/o.RPS)
		}
		if ol := r.open(mix, "permatrix"); ol != nil {
			w("| 5 | %s set: p99 ≤ 2 ms open-loop at half the max | p99 %s ms at %s req/s (p50 %s ms, max %s ms, success %.1f %%) | %s | | `run.sh` (http) |\n",
				mix, f2(ol.P99ms), f0(float64(ol.Rate)), f2(ol.P50ms), f1(ol.MaxMs), 100*ol.Success, met(ol.P99ms <= 2 && ol.Success == 1))
		}
	}
	for _, wr := range r.Writes {
		if wr.Writers > 1 {
			w("| 6 | ≥ 2 000 acknowledged writes/s with %d writers | %s/s (p50 %s ms, p99 %s ms, %d errors) | %s | | `run.sh` (writes) |\n",
				wr.Writers, f0(wr.PerSecond), f1(wr.Latency.P50ms), f1(wr.Latency.P99ms), wr.Latency.Errors, met(wr.PerSecond >= 2000 && wr.Latency.Errors == 0))
		} else {
			w("| 6 | (one writer) | %s/s (p50 %s ms, p99 %s ms) | | | `run.sh` (writes) |\n", f0(wr.PerSecond), f1(wr.Latency.P50ms), f1(wr.Latency.P99ms))
		}
	}

	if r.HTTP != nil && len(r.HTTP.Wrk) > 0 {
		where := "wrk shares the cores with the server"
		if r.HTTP.Pinned != "" {
			where = r.HTTP.Pinned
		}
		w("\nClosed loop (wrk -t%d -c%d, %d s a run, loopback; %s):\n\n", r.HTTP.Threads, r.HTTP.Connections, r.HTTP.Wrk[0].Seconds, where)
		w("| mix | server | req/s | p50 | p99 | non-2xx | distinct bodies |\n|---|---|---|---|---|---|---|\n")
		for _, x := range r.HTTP.Wrk {
			rep := ""
			if x.Repeated {
				rep = " (fewer than the requests: some repeated)"
			}
			w("| %s | %s | %s | %s ms | %s ms | %d | %s%s |\n", x.Mix, x.Target, f0(x.RPS), f2(x.P50ms), f2(x.P99ms), x.Non2xx, f0(float64(x.Bodies)), rep)
		}
	}
	if r.HTTP != nil && len(r.HTTP.Open) > 0 {
		warm := ""
		if x := r.HTTP.Open[0].WarmupSeconds; x > 0 {
			warm = fmt.Sprintf("; each run measured after %d s of the same loop that are not", x)
		}
		w("\nOpen loop (vegeta v12.13.0 as a library, fixed rate = half permatrix's closed-loop req/s on that mix unless --open-rate%s):\n\n", warm)
		w("| mix | server | rate asked | rate sent | p50 | p99 | max | success |\n|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.HTTP.Open {
			w("| %s | %s | %s/s | %s/s | %s ms | %s ms | %s ms | %.2f %% |\n", x.Mix, x.Target, f0(float64(x.Rate)), f0(x.SentRate), f2(x.P50ms), f2(x.P99ms), f1(x.MaxMs), 100*x.Success)
		}
		w("\nA sent rate under the asked one means the load generator could not keep the rate (its workers all waiting, or no core free): the latencies then understate the queueing. The floor (echo) at the same rate shows what the machine and vegeta allow.\n")
	}
	if o := r.OPA; o != nil {
		if o.Loaded {
			w("\nStock opa loaded the %s MB export in %s s (RSS %s MiB, %s MiB after the runs; peak while loading %s MiB); %d of 100 hot checks got the same `allow` from both.\n",
				f0(float64(o.ExportBytes)/1e6), f1(o.LoadSeconds), f0(o.RSSMiB), f0(o.RSSAfterLoadMiB), f0(o.RSSPeakLoadMiB), o.AgreeOf100)
		} else {
			w("\nStock opa did not load the %s MB export: %s (peak RSS %s MiB).\n", f0(float64(o.ExportBytes)/1e6), o.Note, f0(o.RSSPeakLoadMiB))
		}
	}
	if r.Setup.Seconds > 0 {
		w("\nSetup (custom roles, projects, memberships through their endpoints, concurrent writers): %s writes in %s s (%s/s). ",
			f0(float64(r.Setup.Roles+r.Setup.Projects+r.Setup.Memberships)), f1(r.Setup.Seconds), f0(r.Setup.WritesPerSecond))
	}
	if im := r.Import; im != nil {
		w("Import: RSS %s MiB before, peak %s MiB during (heap peak %s MiB).", f0(im.MemoryBefore.RSS), f0(im.MemoryPeak.RSS), f0(im.MemoryPeak.Anon))
		if rs := r.Restart; rs != nil {
			w(" Shutdown (SIGTERM) took %s s.", f2(rs.ShutdownSeconds))
		}
		w("\n")
	}
	if len(r.GoBench) > 0 {
		w("\nGo benchmarks (medians):\n\n| package | benchmark | runs | ns/op | B/op | allocs/op | other |\n|---|---|---|---|---|---|---|\n")
		for _, g := range r.GoBench {
			var other []string
			var units []string
			for u := range g.Median {
				units = append(units, u)
			}
			sort.Strings(units)
			for _, u := range units {
				if u != "ns/op" && u != "B/op" && u != "allocs/op" {
					other = append(other, f0(g.Median[u])+" "+u)
				}
			}
			w("| %s | `%s` | %d | %s | %s | %s | %s |\n", strings.TrimPrefix(g.Package, "./"), strings.TrimPrefix(g.Name, "Benchmark"), g.Runs,
				f0(g.Median["ns/op"]), f0(g.Median["B/op"]), f0(g.Median["allocs/op"]), strings.Join(other, ", "))
		}
	}
	return b.String()
}

func joinF(vs []float64) string {
	var s []string
	for _, v := range vs {
		s = append(s, f0(v))
	}
	return strings.Join(s, " · ")
}
