package pdp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	permahttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/pdp"
)

// analysts is an import of n Celonis analysts: a role and a project grant each.
func analysts(from, n int) []pdp.ImportLine {
	var lines []pdp.ImportLine
	for i := from; i < from+n; i++ {
		u := fmt.Sprintf("user:u%d", i)
		lines = append(lines,
			pdp.ImportLine{Line: len(lines) + 1, Assignment: permatrix.Assignment{Subject: u, System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}},
			pdp.ImportLine{Line: len(lines) + 2, Assignment: permatrix.Assignment{Subject: u, System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: fmt.Sprintf("p%d", i%50)}}})
	}
	return lines
}

func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	svc := newService(b)
	const chunk = 1000 // users: 2,000 assignments
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := svc.Import(ctx, analysts(i*chunk, chunk)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*chunk*b.N)/b.Elapsed().Seconds(), "assignments/s")
}

// BenchmarkImportStream is an import as the server makes it: NDJSON read by
// the server's reader, committed in chunks (ImportStream), 20 000 lines of
// Celonis analysts in chunks of 5 000 per iteration.
func BenchmarkImportStream(b *testing.B) { benchmarkImportStream(b, false, false) }

// BenchmarkImportStreamPairs is BenchmarkImportStream with each analyst's
// two lines together, as an export lists a subject's grants: the second
// line's verdict reads what the first writes, so it is judged in order.
func BenchmarkImportStreamPairs(b *testing.B) { benchmarkImportStream(b, true, false) }

// BenchmarkImportStreamWithWrites is BenchmarkImportStream while single
// writes are made on other users, one a millisecond, as on a sidecar in
// use: a commit between a plan's snapshot and its workers' has them judge
// on a newer snapshot than the plan's (taken-ahead/line says how many of
// their verdicts the plans could take).
func BenchmarkImportStreamWithWrites(b *testing.B) { benchmarkImportStream(b, false, true) }

func benchmarkImportStream(b *testing.B, pairs, writes bool) {
	ctx := context.Background()
	svc := newService(b)
	if writes {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				a := permatrix.Assignment{Subject: fmt.Sprintf("user:w%d", i), System: "celonis-task-mining", Role: "analyst", Scope: permatrix.ServiceScope}
				if _, _, err := svc.Assign(ctx, a, ""); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		defer func() { close(stop); <-done }()
	}
	const users, chunk = 10_000, 5_000
	ndjson := func(from int) []byte {
		var buf bytes.Buffer
		// Unless pairs, every line another user (in test/bench's dataset
		// 12 % of the lines follow one of the same subject and system).
		ls := analysts(from, users)
		for i := range ls {
			if i%2 == 1 && !pairs {
				ls[i].Assignment.Subject += "p"
			}
		}
		for _, l := range ls {
			line, _ := json.Marshal(l.Assignment)
			buf.Write(line)
			buf.WriteByte('\n')
		}
		return buf.Bytes()
	}
	operator := func(int, *string) (string, error) { return "", nil }
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		body := ndjson(i * users)
		b.StartTimer()
		ir := permahttp.NewImportReader(bytes.NewReader(body), operator)
		res, err := svc.ImportStream(ctx, ir.Next, pdp.ImportOptions{Chunk: chunk})
		if err != nil || res.Imported != 2*users {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(2*users*b.N)/b.Elapsed().Seconds(), "assignments/s")
	b.ReportMetric(float64(pdp.AheadTaken(svc))/float64(2*users*b.N), "taken-ahead/line")
}
