package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/tracing"
)

// startTracing starts OPA's distributed_tracing when the file turns it on
// (nil otherwise: nothing traced); stop exports what is queued, within
// timeout.
func startTracing(ctx context.Context, file *config.File, log *slog.Logger) (tr *tracing.Tracing, stop func(timeout time.Duration), err error) {
	var raw []byte
	if file != nil {
		raw = file.DistributedTracing
	}
	cfg, err := tracing.ParseConfig(raw)
	if err != nil {
		return nil, nil, err
	}
	if tr, err = tracing.Start(ctx, cfg, log); err != nil {
		return nil, nil, err
	}
	if tr != nil {
		log.Info("distributed tracing on", "type", cfg.Type, "address", cfg.Address, "service_name", cfg.ServiceName, "sample_percentage", *cfg.SamplePercentage)
	}
	return tr, func(timeout time.Duration) {
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("distributed tracing: spans not exported at shutdown", "err", fmt.Sprint(err), "spans_dropped_total", tr.Dropped())
		}
	}, nil
}

// tracingDropped is the count of spans dropped (queue full, or their
// export failed) in /metrics: no labels, so no trace id or path is one.
func tracingDropped(tr *tracing.Tracing) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "permatrix_tracing_spans_dropped_total",
		Help: "Spans of distributed tracing dropped: the queue was full, or their export failed (docs/config.md)."},
		func() float64 { return float64(tr.Dropped()) })
}
