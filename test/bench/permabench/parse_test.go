package main

import (
	"os"
	"path/filepath"
	"testing"
)

const wrkReport = `Running 3s test @ http://127.0.0.1:40001
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.51ms    5.12ms  62.86ms   97.00%
    Req/Sec     6.85k     1.02k    8.01k    80.00%
  Latency Distribution
     50%  460.00us
     75%  612.00us
     90%    1.01ms
     99%   1.20s
  78904 requests in 3.00s, 20.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 3
Requests/sec:  26301.33
Transfer/sec:      6.71MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 26301.33 || r.Requests != 78904 || r.Non2xx != 3 || r.P50ms != 0.46 || r.P99ms != 1200 || r.SocketErrors == "" {
		t.Fatalf("%+v", r)
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Fatal("a report without Requests/sec: want an error")
	}
}

func TestParseBench(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.log")
	out := `goos: linux
BenchmarkDecide/assignments=200-2   	   10000	    174100 ns/op	   48500 B/op	    1013 allocs/op
BenchmarkDecide/assignments=200-2   	   10000	    180000 ns/op	   48500 B/op	    1013 allocs/op
BenchmarkDecide/assignments=200-2   	   10000	    170000 ns/op	   48600 B/op	    1015 allocs/op
BenchmarkImport-2   	       2	 570869003 ns/op	      3503 assignments/s	69336360 B/op	 1176522 allocs/op
PASS
`
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	bs, err := parseBench(path, "./internal/opa")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Name != "BenchmarkDecide/assignments=200" || bs[0].Runs != 3 || bs[0].Median["ns/op"] != 174100 || bs[0].Median["allocs/op"] != 1013 {
		t.Fatalf("%+v", bs)
	}
	if bs[1].Median["assignments/s"] != 3503 {
		t.Fatalf("%+v", bs[1])
	}
}

func TestDeciles(t *testing.T) {
	var ps []Progress
	for s := 1; s <= 10; s++ {
		ps = append(ps, Progress{Seconds: float64(s), Lines: 1000, Committed: s * 100}) // every line sent at once
	}
	d := deciles(ps, 1000)
	if len(d) != 10 || d[0] != 100 || d[9] != 100 {
		t.Fatalf("%v", d)
	}
}

func TestGroup(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "1000": "1 000", "1234567": "1 234 567", "-12000": "-12 000"} {
		if got := group(in); got != want {
			t.Errorf("group(%s) = %q, want %q", in, got, want)
		}
	}
}
