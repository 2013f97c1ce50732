// Package decisionlog is permatrix's decision log, in OPA's format (Entry)
// and through OPA's own decision-log plugin
// (github.com/open-policy-agent/opa/v1/plugins/logs): every decision passes
// the drop and mask policies (data.system.log.drop and .mask, or the paths
// decision_logs names) evaluated with the active bundle's compiler, then
// goes to a local JSON-lines file or stdout (File), to an HTTP service in
// OPA's vocabulary (decision_logs.service: batched, gzipped, retried with
// backoff, size-limited), and to the console (decision_logs.console).
//
// Nothing is dropped silently: entries the plugin drops (buffer full, rate
// limit, an event over the upload limit), a mask or drop policy that fails,
// and writes the file refuses are counted by reason (Dropped, exported as
// permatrix_decision_log_dropped_total) and logged.
package decisionlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/util"
	"go.opentelemetry.io/otel/trace"

	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
)

// Options configure a Logger.
type Options struct {
	// File receives every entry as one JSON line: a path (appended to) or
	// "-" for stdout; "" for none.
	File string
	// Config is OPA's decision_logs section (JSON); nil for none. Its
	// "plugin" is permatrix's: File.
	Config []byte
	// Mask lists JSON pointers (/input/…, /result/…) erased from every
	// entry, beside what the bundle's mask policy says (MaskModule).
	Mask []string
	// Manager is OPA's plugin manager: services, labels, the compiler.
	Manager *management.Manager
	Logger  *slog.Logger
}

// Reasons for dropping an entry (the reason label of
// permatrix_decision_log_dropped_total).
const (
	// DropBufferFull: the upload buffer was full (reporting.buffer_size_limit_*).
	DropBufferFull = "buffer_full"
	// DropRateLimit: over reporting.max_decisions_per_second.
	DropRateLimit = "rate_limit"
	// DropEncoding: the entry could not be encoded, or is over
	// reporting.upload_size_limit_bytes on its own.
	DropEncoding = "encoding"
	// DropMaskError: the mask policy failed to evaluate.
	DropMaskError = "mask_error"
	// DropPolicyError: the drop policy failed to evaluate.
	DropPolicyError = "drop_error"
	// DropWrite: the file or stdout refused the line.
	DropWrite = "write_error"
	// DropError: any other failure to log.
	DropError = "error"
)

// DropReasons are every reason, in a stable order.
var DropReasons = []string{DropBufferFull, DropRateLimit, DropEncoding, DropMaskError, DropPolicyError, DropWrite, DropError}

// DefaultBufferSizeLimit bounds the upload buffer (gzipped entries) when
// reporting sets no bound.
const DefaultBufferSizeLimit = 64 << 20

// sinkName is the file sink's name as an OPA decision-log plugin.
const sinkName = "permatrix_decision_log_file"

// Logger logs decisions (pdp.DecisionLogger).
type Logger struct {
	plugin  *logs.Plugin
	sink    *sink
	log     *slog.Logger
	metrics metrics.Metrics // the plugin's counters
	mask    []string
	maskAt  string // the mask rule's path, e.g. system/log/mask
	mgr     *management.Manager
	own     *management.Manager // Open's, stopped by Close

	dropped map[string]*atomic.Uint64
	closed  sync.Once
	warnMu  sync.Mutex
	warned  map[string]time.Time // last log line per reason
}

// New builds a logger and starts OPA's plugin. Attach it to the engine
// before the first activation (the mask list, the compiler).
func New(ctx context.Context, o Options) (*Logger, error) {
	if o.Manager == nil {
		return nil, errors.New("decision log: no plugin manager")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &Logger{log: o.Logger, mgr: o.Manager, metrics: metrics.New(), dropped: map[string]*atomic.Uint64{}, warned: map[string]time.Time{}}
	for _, r := range DropReasons {
		l.dropped[r] = new(atomic.Uint64)
	}
	cfg, err := readConfig(o.Config)
	if err != nil {
		return nil, err
	}
	if err := l.setMask(cfg, o.Mask); err != nil {
		return nil, err
	}
	if o.File != "" {
		s, err := openSink(o.File, l)
		if err != nil {
			return nil, fmt.Errorf("decision log %s: %w", o.File, err)
		}
		l.sink = s
		cfg["plugin"] = sinkName
	}
	mgr := o.Manager.Plugins()
	parsed, err := parseConfig(cfg, mgr.Services())
	if err != nil {
		l.closeSink(ctx)
		return nil, err
	}
	if parsed == nil {
		l.closeSink(ctx)
		return nil, errors.New("decision log: nothing to log to (no file, service or console)")
	}
	if l.sink != nil {
		mgr.Register(sinkName, l.sink)
		// The file is open: ready (OPA's status plugin reports every
		// registered plugin's state, and the manager starts none
		// registered after its Start).
		mgr.UpdatePluginStatus(sinkName, &plugins.Status{State: plugins.StateOK})
	}
	o.Manager.ObserveErrors(l.observe)
	l.plugin = logs.New(parsed, mgr).WithMetrics(l.metrics)
	if err := l.plugin.Start(ctx); err != nil {
		l.closeSink(ctx)
		return nil, err
	}
	return l, nil
}

func ptr[T any](v T) *T { return &v }

// readConfig reads OPA's decision_logs section; its "plugin" is
// permatrix's to set.
func readConfig(raw []byte) (map[string]any, error) {
	cfg := map[string]any{}
	if raw == nil {
		return cfg, nil
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	if cfg == nil { // null
		cfg = map[string]any{}
	}
	if _, ok := cfg["plugin"]; ok {
		return nil, errors.New("decision_logs.plugin: permatrix has no decision-log plugins; a local file is server.decision_log (--decision-log)")
	}
	boundBuffer(cfg)
	return cfg, nil
}

// boundBuffer bounds the upload buffer at DefaultBufferSizeLimit when the
// section bounds it in no way. OPA's default is no limit: a service down
// (or answering 503) long enough took serve's memory with it, nothing
// dropped or counted. Entries over the bound are dropped, counted as
// buffer_full. An event buffer (buffer_type: event) is bounded by OPA's
// default of 10000 entries; OPA takes max_decisions_per_second instead of
// a byte limit, not with one: then the rate bounds it (OPA's size buffer
// passes the entries of a failed upload through the rate limit again, so
// it holds at most about max_decisions_per_second × max_delay_seconds).
func boundBuffer(cfg map[string]any) {
	rep, ok := cfg["reporting"].(map[string]any)
	switch {
	case cfg["reporting"] == nil:
		rep = map[string]any{}
	case !ok:
		return // OPA's parse says what is wrong
	}
	for _, k := range []string{"buffer_size_limit_bytes", "buffer_size_limit_events", "max_decisions_per_second"} {
		if _, set := rep[k]; set {
			return
		}
	}
	if t, _ := rep["buffer_type"].(string); t == "event" {
		return
	}
	rep["buffer_size_limit_bytes"] = DefaultBufferSizeLimit
	cfg["reporting"] = rep
}

// parseConfig is OPA's parse of the section, with OPA's defaults; nil if
// there is nothing to log to.
func parseConfig(cfg map[string]any, services []string) (*logs.Config, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	parsed, err := logs.NewConfigBuilder().WithBytes(raw).WithServices(services).WithPlugins([]string{sinkName}).
		WithTriggerMode(ptr(plugins.DefaultTriggerMode)).Parse()
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	return parsed, nil
}

// CheckConfig checks OPA's decision_logs section as New reads it, with
// the services configured.
func CheckConfig(raw []byte, services []string) error {
	cfg, err := readConfig(raw)
	if err != nil {
		return err
	}
	cfg["plugin"] = sinkName // as with a file: checks the whole section
	_, err = parseConfig(cfg, services)
	return err
}

// Attach makes the logger follow e's active policy: the mask list is
// compiled with every bundle e activates from now on, and each activated
// policy's compiler (and bundle data) becomes the plugin manager's, which
// the mask and drop policies are evaluated with. Call it before the first
// activation.
func (l *Logger) Attach(e *opa.Engine) {
	if name, src, ok := l.MaskModule(); ok {
		e.AddModule(opa.ModuleSource{Name: name, Source: src})
	}
	e.OnActivate(func(p *opa.Policy) {
		if err := l.mgr.SetCompiler(context.Background(), p.Compiler(), p.Bundle().Data()); err != nil {
			// The plugin keeps the previous compiler: masks may be stale.
			l.log.Error("decision log: the mask policy keeps the previous bundle's compiler", "err", err, "bundle_revision", p.BundleRevision())
		}
	})
}

// LogDecision logs one decision; ctx carries the request's details
// (WithRequest). Failures are counted and logged, never returned.
func (l *Logger) LogDecision(ctx context.Context, e Entry) {
	r := RequestFrom(ctx)
	info := &server.Info{
		DecisionID: e.DecisionID, BatchDecisionID: r.BatchDecisionID, Path: e.Path, Query: e.Query, Timestamp: e.Timestamp,
		RemoteAddr: r.RemoteAddr, RequestID: r.ID, HTTPRequestContext: logging.HTTPRequestContext{Header: r.Header},
		Metrics: entryMetrics(e.Metrics),
	}
	if e.BatchDecisionID != "" {
		info.BatchDecisionID = e.BatchDecisionID
	}
	// The request's span (distributed_tracing), as OPA logs it: an entry
	// leads to its trace.
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		info.TraceID, info.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if len(e.Bundles) > 0 {
		info.Bundles = make(map[string]server.BundleInfo, len(e.Bundles))
		for name, b := range e.Bundles {
			info.Bundles[name] = server.BundleInfo{Revision: b.Revision}
		}
	}
	// The mask policy edits plain JSON values in place: give the plugin
	// copies (the caller's values are left alone, and a struct result
	// becomes an object the mask can edit).
	for _, v := range []struct {
		from any
		to   **any
	}{{e.Input, &info.Input}, {e.Result, &info.Results}} {
		if v.from == nil {
			continue
		}
		c := v.from
		if err := util.RoundTripFast(&c); err != nil {
			l.dropN(DropEncoding, 1, err)
			return
		}
		*v.to = &c
	}
	if e.Custom != nil {
		info.Custom = map[string]any{"store_revision": e.Custom.StoreRevision}
	}
	if err := l.plugin.Log(ctx, info); err != nil {
		l.dropN(DropError, 1, err)
	}
}

// Dropped counts the entries dropped so far, by reason (every reason
// present).
func (l *Logger) Dropped() map[string]uint64 {
	out := make(map[string]uint64, len(l.dropped))
	for r, n := range l.dropped {
		out[r] = n.Load()
	}
	all := l.metrics.All()
	count := func(name string) uint64 {
		n, _ := all["counter_"+name].(uint64)
		return n
	}
	out[DropBufferFull] += count("decision_logs_dropped_buffer_size_limit_exceeded")
	out[DropRateLimit] += count("decision_logs_dropped_rate_limit_exceeded")
	out[DropEncoding] += count("decision_logs_encoding_failure")
	return out
}

// Uploads counts the batches uploaded to the service, and those that
// failed (and are retried).
func (l *Logger) Uploads() (ok, failed uint64) {
	all := l.metrics.All()
	ok, _ = all["counter_decision_logs_chunks_uploaded"].(uint64)
	failed, _ = all["counter_decision_logs_chunks_upload_failed"].(uint64)
	return ok, failed
}

// Close stops the plugin — which uploads what it holds until ctx ends —
// and closes the file.
// Closing again does nothing.
func (l *Logger) Close(ctx context.Context) error {
	var err error
	l.closed.Do(func() {
		l.plugin.Stop(ctx)
		err = l.closeSink(ctx)
		if l.sink != nil {
			l.mgr.Plugins().UpdatePluginStatus(sinkName, &plugins.Status{State: plugins.StateNotReady})
		}
		if l.own != nil {
			l.own.Stop(ctx)
		}
	})
	return err
}

func (l *Logger) closeSink(ctx context.Context) error {
	if l.sink == nil {
		return nil
	}
	return l.sink.close(ctx)
}

// observe counts what OPA's plugin reports only in its log: a failed mask
// or drop policy drops the entry.
func (l *Logger) observe(plugin, format string) {
	if plugin != logs.Name {
		return
	}
	switch {
	case strings.HasPrefix(format, "Log event masking failed"):
		l.dropped[DropMaskError].Add(1)
	case strings.HasPrefix(format, "Log drop decision failed"):
		l.dropped[DropPolicyError].Add(1)
	case strings.HasPrefix(format, "Decision log dropped due to error serializing"):
		l.dropped[DropEncoding].Add(1)
	}
}

// dropN counts n dropped entries and logs it, at most once a minute per
// reason (with the total), so that a failing disk does not flood the log.
func (l *Logger) dropN(reason string, n uint64, err error) {
	total := l.dropped[reason].Add(n)
	l.warnMu.Lock()
	last, seen := l.warned[reason]
	now := time.Now()
	if seen && now.Sub(last) < time.Minute {
		l.warnMu.Unlock()
		return
	}
	l.warned[reason] = now
	l.warnMu.Unlock()
	l.log.Error("decision log entries dropped", "reason", reason, "err", err.Error(), "dropped", n, "dropped_total", total)
}

// entryMetrics gives an entry's metrics to the plugin, which only reads
// All.
func entryMetrics(m map[string]any) metrics.Metrics {
	if m == nil {
		return nil
	}
	return fixedMetrics{all: m}
}

type fixedMetrics struct {
	metrics.Metrics
	all map[string]any
}

func (f fixedMetrics) All() map[string]any { return f.all }

// sink writes the events OPA's plugin hands it (masked) as JSON lines: an
// OPA decision-log plugin (logs.Logger). Log only appends the line to a
// buffer; a goroutine of its own writes the buffer out at least every
// FlushInterval, and as soon as it holds flushSize bytes. A write that
// blocks (a pipe nobody reads, a hung mount) holds up that goroutine, never
// a decision: Log keeps buffering up to MaxPending bytes, then drops lines,
// counted. A write the file refuses drops the lines it held, counted.
type sink struct {
	mu       sync.Mutex
	w        io.Writer
	closer   io.Closer
	buf      []byte // lines waiting for the writer
	spare    []byte // the writer's last buffer, for reuse
	pending  int    // lines in buf
	inflight int    // lines the writer is writing
	closed   bool
	l        *Logger
	kick     chan struct{} // buf holds flushSize bytes
	done     chan struct{} // closed by close: write what is left, stop
	stopped  chan struct{} // closed when the writer returns
}

// FlushInterval bounds how long a logged decision sits in the file sink's
// buffer.
const FlushInterval = time.Second

// MaxPending bounds the bytes of lines waiting for the file (a line longer
// than that on its own waits alone).
const MaxPending = 8 << 20

// flushSize is how much the buffer holds before it is written at once.
const flushSize = 64 << 10

func openSink(path string, l *Logger) (*sink, error) {
	var w io.Writer = os.Stdout
	var c io.Closer
	if path != "-" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, err
		}
		w, c = f, f
	}
	s := &sink{w: w, closer: c, l: l, kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go s.writeLoop()
	return s, nil
}

func (s *sink) writeLoop() {
	defer close(s.stopped)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.done:
			s.flush()
			return
		}
		s.flush()
	}
}

// flush writes the buffer out, without the lock: Log goes on meanwhile. On
// failure its lines are dropped (counted).
func (s *sink) flush() {
	s.mu.Lock()
	if s.pending == 0 { // idle: nothing to swap out
		s.mu.Unlock()
		return
	}
	buf, n := s.buf, s.pending
	s.buf, s.spare, s.pending, s.inflight = s.spare[:0], nil, 0, n
	s.mu.Unlock()
	_, err := s.w.Write(buf)
	if err != nil {
		s.l.dropN(DropWrite, uint64(n), err)
	}
	s.mu.Lock()
	s.inflight = 0
	if cap(buf) <= 2*MaxPending {
		s.spare = buf[:0]
	}
	s.mu.Unlock()
}

// Log buffers one line. Failures are counted, not returned: the plugin
// would only log them.
func (s *sink) Log(_ context.Context, e logs.EventV1) error {
	line, err := json.Marshal(e)
	if err != nil {
		s.l.dropN(DropEncoding, 1, err)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.l.dropN(DropWrite, 1, errors.New("the decision log is closed"))
		return nil
	case len(s.buf) > 0 && len(s.buf)+len(line)+1 > MaxPending:
		s.l.dropN(DropWrite, 1, fmt.Errorf("the decision log's writes are not keeping up: %d bytes wait for it", len(s.buf)))
		return nil
	}
	s.buf = append(append(s.buf, line...), '\n')
	s.pending++
	if len(s.buf) >= flushSize {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// close writes what is buffered and closes the file. When ctx ends first
// (a write blocked), the file is closed under the write — which ends it
// where the file allows (a pipe) — and the lines not written are counted
// dropped.
func (s *sink) close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	select {
	case <-s.stopped:
	case <-ctx.Done():
		s.mu.Lock()
		buffered, inflight := s.pending, s.inflight
		s.buf, s.pending = nil, 0
		s.mu.Unlock()
		if s.closer != nil {
			_ = s.closer.Close()
		}
		err := fmt.Errorf("the decision log's last %d entries were not written: %w", buffered+inflight, ctx.Err())
		if buffered > 0 {
			s.l.dropN(DropWrite, uint64(buffered), err) // the writer counts its own when its write ends
		}
		return err
	}
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// The plugin interface: the sink has nothing to start or stop (Close
// closes it, after the plugin stopped).
func (*sink) Start(context.Context) error      { return nil }
func (*sink) Stop(context.Context)             {}
func (*sink) Reconfigure(context.Context, any) {}

// Open is a logger writing path only ("-" is stdout; no service, no mask
// list), with a plugin manager of its own that Close stops.
func Open(path string) (*Logger, error) {
	ctx := context.Background()
	mgr, err := management.New(ctx, nil, nil)
	if err != nil {
		return nil, err
	}
	l, err := New(ctx, Options{File: path, Manager: mgr})
	if err != nil {
		mgr.Stop(ctx)
		return nil, err
	}
	l.own = mgr
	return l, nil
}
