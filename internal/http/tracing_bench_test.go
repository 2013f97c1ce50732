package http_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/permatrix/permatrix/internal/bolt"
	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/tracing"
)

// discardReceiver is an OTLP/gRPC collector that takes every span.
type discardReceiver struct {
	collectortracepb.UnimplementedTraceServiceServer
}

func (discardReceiver) Export(context.Context, *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

// BenchmarkCheckTracing is the cost of OPA's distributed_tracing on a
// /v1/check through the handler: off (the section absent: nothing
// registered), and on with every request sampled, its spans exported to
// a collector on loopback. The check is asked again and again, so it is
// answered from the decision cache: the fastest check, where tracing's
// share is largest.
func BenchmarkCheckTracing(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracing=%v", on), func(b *testing.B) {
			var tr *tracing.Tracing
			if on {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				collector := grpc.NewServer()
				collectortracepb.RegisterTraceServiceServer(collector, discardReceiver{})
				go func() { _ = collector.Serve(ln) }()
				b.Cleanup(collector.Stop)
				cfg, err := tracing.ParseConfig([]byte(`{"type":"grpc","address":"` + ln.Addr().String() + `"}`))
				if err != nil {
					b.Fatal(err)
				}
				if tr, err = tracing.Start(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
			}
			h := newTracedServer(b, tr).Handler()
			const body = `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"p1"}}`
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(body))
				req.Host = "127.0.0.1"
				req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			b.StopTimer()
			if on && tr.Dropped() > 0 {
				b.Logf("%d spans dropped", tr.Dropped())
			}
		})
	}
}

// newTracedServer is a server of the embedded bundle over a new store,
// traced by tr (nil: off), as serve wires it.
func newTracedServer(tb testing.TB, tr *tracing.Tracing) *permhttp.Server {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	if tr != nil {
		svc.Trace = tr.Span
	}
	bundle, err := opa.ReadDefault()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), bundle); err != nil {
		tb.Fatal(err)
	}
	return permhttp.NewServer(svc, permhttp.Config{AdminToken: "t", Logger: log, Tracing: tr})
}
