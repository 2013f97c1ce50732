package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

// On a terminal: one line rewritten in place with the count, the rate and
// the time left, and a last line with the total when done.
func TestProgressOnATerminal(t *testing.T) {
	var out bytes.Buffer
	p := &progress{what: "copying", total: 100, start: time.Now().Add(-10 * time.Second), tty: true, out: &out}
	p.add(50) // 50 in 10 s: 5/s, 50 left: 10 s
	line := out.String()
	if !regexp.MustCompile(`^\rcopying: 50/100 \(5/s, 1[01]s left\) +$`).MatchString(line) {
		t.Fatalf("progress line: %q", line)
	}
	p.add(10) // within 200 ms of the last line: nothing new
	if out.String() != line {
		t.Fatalf("a line rewritten too soon: %q", out.String())
	}
	p.finish()
	if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(out.String(), "copying: 60 in 10") {
		t.Fatalf("last line: %q", out.String())
	}
}

// Elsewhere: a plain log line now and then, and one at the end.
func TestProgressAsLogLines(t *testing.T) {
	var logs bytes.Buffer
	p := &progress{what: "copying", total: 100, start: time.Now().Add(-10 * time.Second),
		log: slog.New(slog.NewJSONHandler(&logs, nil)), logEvery: time.Hour}
	p.add(50)
	p.add(10) // within logEvery of the first line
	p.finish()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 || recs[0]["msg"] != "copying" || recs[0]["done"] != float64(50) || recs[0]["total"] != float64(100) ||
		recs[0]["per_second"] != float64(5) || (recs[0]["eta"] != "10s" && recs[0]["eta"] != "11s") ||
		recs[1]["msg"] != "copying: finished" || recs[1]["done"] != float64(60) {
		t.Fatalf("log lines: %s", logs.String())
	}
}
