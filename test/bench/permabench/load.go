package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// WrkRun is one closed-loop run of wrk.
type WrkRun struct {
	Mix          string  `json:"mix"`    // hot or cold
	Target       string  `json:"target"` // echo, permatrix or opa
	Seconds      int     `json:"seconds"`
	Requests     int     `json:"requests"`
	RPS          float64 `json:"rps"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Non2xx       int     `json:"non_2xx"`
	SocketErrors string  `json:"socket_errors,omitempty"`
	Bodies       int     `json:"distinct_bodies"`
	// Repeated: the cold run sent more requests than it has distinct
	// bodies, so some users were asked twice (the run is not all cold).
	Repeated bool `json:"repeated,omitempty"`
}

type wrkOptions struct {
	threads, conns int
	lua            string
	cpus           string // taskset -c, if set
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSocket   = regexp.MustCompile(`Socket errors:.*`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// wrk runs wrk against url's path for secs seconds with the bodies file.
func runWrk(o wrkOptions, url, path string, wrap bool, bodies string, secs int, logPath string) (WrkRun, error) {
	var r WrkRun
	args := []string{"wrk", "-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.conns), "-d" + strconv.Itoa(secs) + "s", "--latency", "-s", o.lua, url}
	if o.cpus != "" {
		args = append([]string{"taskset", "-c", o.cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	w := "0"
	if wrap {
		w = "1"
	}
	cmd.Env = append(os.Environ(), "BENCH_PATH="+path, "BENCH_WRAP="+w, "BENCH_BODIES="+bodies, "BENCH_THREADS="+strconv.Itoa(o.threads))
	out, err := cmd.CombinedOutput()
	if logPath != "" {
		_ = os.WriteFile(logPath, out, 0o644)
	}
	if err != nil {
		return r, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r, err = parseWrk(string(out))
	r.Seconds = secs
	return r, err
}

// parseWrk reads wrk's report (with --latency).
func parseWrk(s string) (WrkRun, error) {
	var r WrkRun
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", s)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reRequests.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.Non2xx, _ = strconv.Atoi(m[1])
	}
	r.SocketErrors = reSocket.FindString(s)
	for _, m := range rePct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.P50ms = v
		} else {
			r.P99ms = v
		}
	}
	return r, nil
}

// countLines is the number of lines of a file.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// readLines reads a bodies file.
func readLines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.Split(bytes.TrimSpace(b), []byte("\n")), nil
}

// OpenLoop is one open-loop (fixed-rate) run of vegeta.
type OpenLoop struct {
	Mix      string  `json:"mix"`
	Target   string  `json:"target"`
	Rate     int     `json:"rate"`      // requests/s asked
	SentRate float64 `json:"sent_rate"` // requests/s vegeta managed to send
	Seconds  int     `json:"seconds"`
	// WarmupSeconds the same open loop ran, not measured, just before.
	WarmupSeconds int            `json:"warmup_seconds,omitempty"`
	Requests      uint64         `json:"requests"`
	Throughput    float64        `json:"throughput"` // successful requests/s
	Success       float64        `json:"success"`    // 0..1
	P50ms         float64        `json:"p50_ms"`
	P99ms         float64        `json:"p99_ms"`
	MaxMs         float64        `json:"max_ms"`
	Status        map[string]int `json:"status_codes"`
	Errors        []string       `json:"errors,omitempty"`
	Repeated      bool           `json:"repeated,omitempty"`
}

// openLoop sends rate requests/s for secs seconds, POSTing bodies in order
// (wrapped as {"input": …} when wrap), and measures every latency: a slow
// answer does not slow the sending (vegeta starts more workers, up to
// maxWorkers). Connections are bounded (maxConns): a request waiting for
// one counts that wait in its latency, and the file descriptors of both
// sides stay bounded when the server falls behind. If vegeta cannot send at
// the rate (its workers all busy, or the machine's cores taken), SentRate
// says so.
func openLoop(url string, wrap bool, bodies [][]byte, rate, secs int) OpenLoop {
	var mu sync.Mutex
	i := 0
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	tr := func(t *vegeta.Target) error {
		mu.Lock()
		b := bodies[i%len(bodies)]
		i++
		mu.Unlock()
		if wrap {
			b = append(append([]byte(`{"input":`), b...), '}')
		}
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, url, b, hdr
		return nil
	}
	transport := &http.Transport{MaxConnsPerHost: maxConns, MaxIdleConnsPerHost: maxConns, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	defer transport.CloseIdleConnections()
	atk := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: transport, Timeout: 10 * time.Second}),
		vegeta.Workers(8), vegeta.MaxWorkers(maxWorkers))
	var m vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, time.Duration(secs)*time.Second, "bench") {
		m.Add(res)
	}
	m.Close()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return OpenLoop{Rate: rate, SentRate: m.Rate, Seconds: secs, Requests: m.Requests, Throughput: m.Throughput, Success: m.Success,
		P50ms: ms(m.Latencies.P50), P99ms: ms(m.Latencies.P99), MaxMs: ms(m.Latencies.Max),
		Status: m.StatusCodes, Errors: m.Errors, Repeated: i > len(bodies)}
}

// Bounds of an open-loop run.
const (
	maxConns   = 512
	maxWorkers = 4096
)

// Latency is a set of latencies' summary, in milliseconds.
type Latency struct {
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func summarize(ds []time.Duration, errors int) Latency {
	l := Latency{Count: len(ds), Errors: errors}
	if len(ds) == 0 {
		return l
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))]) / float64(time.Millisecond)
	}
	l.P50ms, l.P99ms, l.MaxMs = at(0.50), at(0.99), float64(ds[len(ds)-1])/float64(time.Millisecond)
	return l
}

// Writes is a write-throughput run: acknowledged assignment writes.
type Writes struct {
	Writers   int     `json:"writers"`
	Seconds   float64 `json:"seconds"`
	Acked     int     `json:"acked"`
	PerSecond float64 `json:"per_second"`
	Latency   Latency `json:"latency"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// assignmentBody is a valid write for a user no one else writes: an
// orchestrator permission at service scope (operator writes, no actor).
func assignmentBody(user string) []byte {
	return []byte(`{"subject":"user:` + user + `","system":"uipath-orchestrator","permission":"ml_logs_view","scope":{"type":"service"}}`)
}

// postAssignment makes one write; ok is a 201.
func postAssignment(ctx context.Context, c *http.Client, url, token, user string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/assignments", bytes.NewReader(assignmentBody(user)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return time.Since(start), err
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		return d, fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(b.String()))
	}
	return d, nil
}

// writeLoad runs writers concurrent writers for d, each writing distinct
// users as fast as its writes are acknowledged.
func writeLoad(url, token, tag string, writers int, d time.Duration) Writes {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	first := ""
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				dur, err := postAssignment(context.Background(), c, url, token, fmt.Sprintf("%s-%d-%d", tag, w, n))
				mu.Lock()
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				} else {
					lat = append(lat, dur)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return Writes{Writers: writers, Seconds: secs, Acked: len(lat), PerSecond: float64(len(lat)) / secs, Latency: summarize(lat, errs), FirstErr: first}
}
