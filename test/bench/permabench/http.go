package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

type httpTarget struct {
	name, url, path string
	wrap            bool
}

// startOPA starts stock `opa run --server` on the repository's policies,
// catalogs and the export, as docs/opa-api.md says, and measures its load.
func (b *bench) startOPA() (*proc, error) {
	info := &OPAInfo{ExportBytes: b.res.Export.Bytes}
	b.res.OPA = info
	addr := freeAddr()
	p, err := startProc("opa", b.o.repo, b.logs, b.bin.opa, addr,
		"run", "--server", "--addr", addr, "--log-level", "error", "--ignore", "*_test.rego",
		"policies", "systems:systems", b.files.export)
	if err != nil {
		return nil, err
	}
	smp := p.sample(100 * time.Millisecond)
	d, err := p.waitOK("/health", b.o.opaTimeout)
	_, peak := smp.stop()
	info.RSSPeakLoadMiB = peak.RSS
	if err != nil {
		info.Note = err.Error()
		p.stop(10 * time.Second)
		return nil, nil
	}
	info.Loaded = true
	info.LoadSeconds = d.Seconds()
	info.RSSMiB = p.memory().RSS
	b.logf("opa: loaded the export in %.1f s, RSS %.0f MiB (peak while loading %.0f MiB)", info.LoadSeconds, info.RSSMiB, peak.RSS)
	return p, nil
}

// agree asks permatrix and opa the first n hot checks and counts the same
// allow: the comparison is over the same policies and data.
func agree(pm, opa string, bodies [][]byte, n int) (int, error) {
	same := 0
	for _, body := range bodies[:min(n, len(bodies))] {
		var a struct {
			Allow bool `json:"allow"`
		}
		var o struct {
			Result struct {
				Allow bool `json:"allow"`
			} `json:"result"`
		}
		if err := postJSON(pm+"/v1/check", body, &a); err != nil {
			return same, err
		}
		if err := postJSON(opa+"/v1/data/permatrix/decision", append(append([]byte(`{"input":`), body...), '}'), &o); err != nil {
			return same, err
		}
		if a.Allow == o.Result.Allow {
			same++
		}
	}
	return same, nil
}

func postJSON(url string, body []byte, out any) error {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// http measures decisions over HTTP: wrk closed loop (hot and cold mixes,
// echo, permatrix, opa), then vegeta open loop at half permatrix's maximum.
func (b *bench) http() error {
	if b.pm == nil || !b.pm.running() {
		return fmt.Errorf("permatrix is not running (the load phase was skipped?)")
	}
	h := &HTTPInfo{Threads: b.o.wrkThreads, Connections: b.o.wrkConns}
	b.res.HTTP = h
	targets := []httpTarget{}
	addr := freeAddr()
	hello, err := startProc("hello", b.o.repo, b.logs, b.bin.hello, addr, "--addr", addr)
	if err != nil {
		return err
	}
	if _, err := hello.waitOK("/health", time.Minute); err != nil {
		return err
	}
	targets = append(targets, httpTarget{"echo", hello.url, "/v1/check", false}, httpTarget{"permatrix", b.pm.url, "/v1/check", false})
	hot, err := readLines(b.files.hot)
	if err != nil {
		return err
	}
	var opa *proc
	if !b.o.skipped("opa") && b.res.Export != nil {
		if opa, err = b.startOPA(); err != nil {
			return err
		}
		if opa != nil {
			targets = append(targets, httpTarget{"opa", opa.url, "/v1/data/permatrix/decision", true})
			n, err := agree(b.pm.url, opa.url, hot, 100)
			if err != nil {
				return fmt.Errorf("asking permatrix and opa the same checks: %w", err)
			}
			b.res.OPA.AgreeOf100 = n
		}
	}
	wo := wrkOptions{threads: b.o.wrkThreads, conns: b.o.wrkConns, lua: filepath.Join(b.o.repo, "test", "bench", "check.lua")}
	if b.o.pin {
		all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
		wo.cpus = fmt.Sprintf("1-%d", runtime.NumCPU()-1)
		if runtime.NumCPU() == 2 {
			wo.cpus = "1"
		}
		servers := []*proc{b.pm, hello}
		if opa != nil {
			servers = append(servers, opa)
		}
		for _, p := range servers {
			if err := pin(p.pid(), "0"); err != nil {
				return err
			}
		}
		if err := pin(os.Getpid(), wo.cpus); err != nil {
			return err
		}
		h.Pinned = "servers on CPU 0, wrk and vegeta on CPU " + wo.cpus
		defer func() {
			_ = pin(os.Getpid(), all)
			if b.pm.running() {
				_ = pin(b.pm.pid(), all)
			}
		}()
	}
	files := map[string]string{"hot": b.files.hot, "cold": b.files.cold}
	counts := map[string]int{"hot": b.res.Dataset.HotBodies, "cold": b.res.Dataset.ColdBodies}
	for _, mix := range []string{"hot", "cold"} {
		for _, t := range targets {
			if b.o.warmupSeconds > 0 {
				if _, err := runWrk(wo, t.url, t.path, t.wrap, b.files.hot, b.o.warmupSeconds, ""); err != nil {
					return err
				}
			}
			r, err := runWrk(wo, t.url, t.path, t.wrap, files[mix], b.o.wrkSeconds, filepath.Join(b.logs, "wrk-"+mix+"-"+t.name+".txt"))
			if err != nil {
				return err
			}
			r.Mix, r.Target, r.Bodies = mix, t.name, counts[mix]
			r.Repeated = mix == "cold" && r.Requests > r.Bodies
			h.Wrk = append(h.Wrk, r)
			b.logf("wrk %s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d", mix, t.name, r.RPS, r.P50ms, r.P99ms, r.Non2xx)
		}
	}
	if opa != nil {
		b.res.OPA.RSSAfterLoadMiB = opa.memory().RSS
		opa.stop(10 * time.Second) // its memory back before the open loop
	}
	if !b.o.skipped("open") {
		cold, err := readLines(b.files.cold)
		if err != nil {
			return err
		}
		// permatrix on both mixes, and the floor at permatrix's hot rate.
		runs := []struct {
			mix string
			t   httpTarget
		}{{"hot", targets[1]}, {"hot", targets[0]}, {"cold", targets[1]}}
		for _, r := range runs {
			rate := int(h.rps(r.mix, "permatrix") / 2)
			if b.o.openRate > 0 {
				rate = b.o.openRate
			}
			if rate < 1 {
				continue
			}
			bodies := hot
			if r.mix == "cold" {
				// After the bodies wrk's cold run sent.
				sent := 0
				for _, w := range h.Wrk {
					if w.Mix == "cold" && w.Target == "permatrix" {
						sent = w.Requests
					}
				}
				bodies = cold[min(sent, len(cold)-1):]
			}
			if b.o.openWarmupSeconds > 0 {
				// The server at the rate before it is measured there: right
				// after wrk's cold run its heap and collector are still those
				// of the burst, and its p99 at a low rate stays higher for
				// tens of seconds (docs/performance.md, 2026-11-29 03:30).
				// The warm-up's bodies are the ones the measured run sends
				// after it (the cold mix: each body's first ask stays so).
				warm := openLoop(r.t.url+r.t.path, r.t.wrap, bodies, rate, b.o.openWarmupSeconds)
				if r.mix == "cold" {
					bodies = bodies[min(int(warm.Requests), len(bodies)-1):]
				}
			}
			ol := openLoop(r.t.url+r.t.path, r.t.wrap, bodies, rate, b.o.openSeconds)
			ol.WarmupSeconds = b.o.openWarmupSeconds
			ol.Mix, ol.Target = r.mix, r.t.name
			if r.mix == "hot" {
				ol.Repeated = false
			}
			h.Open = append(h.Open, ol)
			b.logf("vegeta %s %s at %d/s: p50 %.2f ms, p99 %.2f ms, max %.1f ms, success %.3f", r.mix, r.t.name, rate, ol.P50ms, ol.P99ms, ol.MaxMs, ol.Success)
		}
	}
	hello.stop(10 * time.Second)
	b.res.RSS.AfterLoad = b.pm.memory()
	return nil
}

// rps is the closed-loop throughput of target on mix.
func (h *HTTPInfo) rps(mix, target string) float64 {
	for _, r := range h.Wrk {
		if r.Mix == mix && r.Target == target {
			return r.RPS
		}
	}
	return 0
}

// writes measures acknowledged writes/s with many writers, then one.
func (b *bench) writes() error {
	if b.pm == nil || !b.pm.running() {
		return fmt.Errorf("permatrix is not running (the load phase was skipped?)")
	}
	d := time.Duration(b.o.writeSeconds) * time.Second
	for _, n := range []int{b.o.writers, 1} {
		w := writeLoad(b.pm.url, token, fmt.Sprintf("w%d", n), n, d)
		b.res.Writes = append(b.res.Writes, w)
		b.logf("writes, %d writers: %d acknowledged in %.1f s (%.0f/s), p50 %.1f ms, p99 %.1f ms, errors %d %s",
			n, w.Acked, w.Seconds, w.PerSecond, w.Latency.P50ms, w.Latency.P99ms, w.Latency.Errors, w.FirstErr)
	}
	b.res.RSS.AfterLoad = b.pm.memory()
	return nil
}
