package tracing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// queue is the SDK's batching span processor with what permatrix needs
// of it said outright: a span ended never waits (a full queue drops it),
// and every span lost — dropped, or in an export that failed — is
// counted and logged, at most once a minute. (The SDK's own processor
// counts its drops only in a debug message, and OPA's "blocking" makes a
// decision wait for the exporter.)
type queue struct {
	exporter      sdktrace.SpanExporter
	spans         chan sdktrace.ReadOnlySpan
	maxBatch      int
	batchTimeout  time.Duration
	exportTimeout time.Duration
	log           *slog.Logger

	dropped  atomic.Uint64
	lastWarn atomic.Int64 // unix ns of the last warning

	flush    chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// warnEvery is how often, at most, lost spans are logged.
const warnEvery = time.Minute

func newQueue(exporter sdktrace.SpanExporter, size, maxBatch int, batchTimeout, exportTimeout time.Duration, log *slog.Logger) *queue {
	q := &queue{exporter: exporter, spans: make(chan sdktrace.ReadOnlySpan, size), maxBatch: maxBatch,
		batchTimeout: batchTimeout, exportTimeout: exportTimeout, log: log,
		flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span, or drops it when the queue is full.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.spans <- s:
	default:
		q.dropped.Add(1)
		q.warn("distributed tracing: the span queue is full (the tracing backend is slow or down): spans dropped", nil)
	}
}

func (q *queue) run() {
	defer close(q.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, q.maxBatch)
	export := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.exportTimeout)
		err := q.exporter.ExportSpans(ctx, batch)
		cancel()
		if err != nil {
			q.dropped.Add(uint64(len(batch)))
			q.warn("distributed tracing: exporting spans failed: spans dropped", err)
		}
		clear(batch) // the spans are garbage now
		batch = batch[:0]
	}
	drain := func() {
		for {
			select {
			case s := <-q.spans:
				if batch = append(batch, s); len(batch) >= q.maxBatch {
					export()
				}
			default:
				export()
				return
			}
		}
	}
	timer := time.NewTimer(q.batchTimeout)
	defer timer.Stop()
	for {
		select {
		case s := <-q.spans:
			if batch = append(batch, s); len(batch) >= q.maxBatch {
				export()
				timer.Reset(q.batchTimeout)
			}
		case <-timer.C:
			export()
			timer.Reset(q.batchTimeout)
		case ack := <-q.flush:
			drain()
			close(ack)
		case <-q.stop:
			drain()
			return
		}
	}
}

// ForceFlush exports what the queue holds.
func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what the queue holds and stops the exporter, within
// ctx.
func (q *queue) Shutdown(ctx context.Context) error {
	q.stopOnce.Do(func() { close(q.stop) })
	select {
	case <-q.done:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), q.exporter.Shutdown(ctx))
	}
	return q.exporter.Shutdown(ctx)
}

// warn logs that spans were lost, at most once every warnEvery.
func (q *queue) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := q.lastWarn.Load()
	if last != 0 && now-last < int64(warnEvery) || !q.lastWarn.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"spans_dropped_total", q.dropped.Load(), "logged", "at most once a minute"}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	q.log.Warn(msg, attrs...)
}
