package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

func TestTimeLeft(t *testing.T) {
	for _, c := range []struct {
		done, total int
		rate        float64
		want        string
	}{
		{100, 1000, 10, "1m30s"},
		{0, 3600, 1, "1h0m0s"},
		{999, 1000, 1000, "0s"}, // a millisecond, to the second
		{1, 2, 0.5, "2s"},
		{500_000, 1_000_000, 100_000, "5s"},
		{1000, 1000, 10, "0s"},
		{1200, 1000, 10, "0s"},  // more done than counted (a last line without a newline)
		{10, 0, 10, "?"},        // total unknown (stdin)
		{0, 1000, 0, "?"},       // nothing done yet
		{1, 1 << 62, 1e-9, "?"}, // longer than a Duration holds
		{1, 1000, math.Inf(1), "?"},
		{1, 1000, math.NaN(), "?"},
	} {
		if got := timeLeft(c.done, c.total, c.rate); got != c.want {
			t.Errorf("timeLeft(%d, %d, %g) = %q, want %q", c.done, c.total, c.rate, got, c.want)
		}
	}
}

// progressAt is a progress that started 10 s ago and has done 100 of
// 1000: 10 a second, 1m30s left.
func progressAt(tty bool) (*progress, *bytes.Buffer) {
	var out bytes.Buffer
	p := &progress{what: "importing x (lines)", total: 1000, start: time.Now().Add(-10 * time.Second), tty: tty, out: &out,
		log: slog.New(slog.NewJSONHandler(&out, nil)), logEvery: time.Hour, done: 100}
	return p, &out
}

func TestProgressOnATerminal(t *testing.T) {
	p, out := progressAt(true)
	p.report(false)
	if got := out.String(); !strings.HasPrefix(got, "\rimporting x (lines): 100/1000 (10/s, 1m30s left)") {
		t.Fatalf("%q", got)
	}
	out.Reset()
	p.finish(nil)
	if got := out.String(); !strings.Contains(got, "\rimporting x (lines): 100 in 10s (10/s)   ") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("%q", got)
	}
	out.Reset()
	p.finish(errors.New("refused"))
	if got := out.String(); !strings.Contains(got, "\rimporting x (lines): 100 in 10s (10/s), stopped") {
		t.Fatalf("%q", got)
	}
}

// Not on a terminal: plain log lines, the first at once, then one per
// logEvery.
func TestProgressAsLogLines(t *testing.T) {
	p, out := progressAt(false)
	p.add(0)
	p.add(50) // within logEvery of the first: no line
	var rec map[string]any
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil {
		t.Fatalf("%q", out.String())
	}
	if rec["msg"] != "importing x (lines)" || rec["done"] != float64(100) || rec["total"] != float64(1000) ||
		rec["eta"] != "1m30s" || rec["per_second"] != float64(10) {
		t.Fatalf("%v", rec)
	}
	out.Reset()
	p.finish(nil)
	if json.Unmarshal(out.Bytes(), &rec) != nil || rec["msg"] != "importing x (lines): finished" || rec["done"] != float64(150) {
		t.Fatalf("%q", out.String())
	}
	out.Reset()
	p.finish(errors.New("refused"))
	if json.Unmarshal(out.Bytes(), &rec) != nil || rec["msg"] != "importing x (lines): stopped" {
		t.Fatalf("%q", out.String())
	}
}
