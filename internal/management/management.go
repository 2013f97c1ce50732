// Package management runs OPA's plugin manager for permatrix's use of OPA's
// management APIs: the services (bundle servers, decision-log collectors)
// and keys of OPA's configuration, the labels every logged decision
// carries, and the compiler OPA's plugins evaluate with — the decision
// log's mask policy runs with the active bundle's compiler, set again on
// every bundle swap (SetCompiler). With OPA's status section it runs
// OPA's status plugin (status.go): a control plane is sent the labels,
// the bundle's status (BundleStatus, told by whatever loads the bundle),
// the decision-log plugin's and the plugins' states, as an OPA sends them.
//
// The manager keeps a small in-memory store of its own: the assignment
// store and the policies are not in it; it holds the active bundle's data,
// so that a mask policy may read the catalogs.
package management

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tracing"

	"github.com/permatrix/permatrix/internal/redact"
)

// Manager is OPA's plugin manager.
type Manager struct {
	m   *plugins.Manager
	log *logger
	// downloadMax bounds each download unpacked, downloadWithin the time
	// its body takes (LimitDownloads).
	downloadMax, downloadWithin atomic.Int64
	// bundles are the bundles' statuses, for OPA's status plugin
	// (status.go).
	bundles bundleStatuses
	// traceRequests wraps the services' transports (TraceRequests).
	traceRequests atomic.Pointer[func(http.RoundTripper) http.RoundTripper]
	// statusPath is the path the status plugin reports to
	// (/status[/<partition_name>]), nil without one (statusredact.go).
	statusPath atomic.Pointer[string]
}

// TraceRequests makes wrap (internal/tracing's Transport) wrap the
// transport of every service client: the bundle downloads and
// decision-log uploads are then spans, their trace context sent. Call it
// before Start (OPA builds a client's transport on its first request).
func (m *Manager) TraceRequests(wrap func(http.RoundTripper) http.RoundTripper) {
	m.traceRequests.Store(&wrap)
}

// New builds a manager from OPA's configuration (JSON or YAML: services,
// keys, labels, persistence_directory; nil is none). Its id label is new
// for each process, as `opa run` does.
func New(ctx context.Context, opaConfig []byte, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	if opaConfig == nil {
		opaConfig = []byte("{}")
	}
	// OPA's plugins say "info" for every upload and poll: debug here.
	l := &logger{l: log, info: slog.LevelDebug, obs: &observers{}, rep: &repeats{now: time.Now, last: map[repeatKey]*repeated{}}}
	console := &logger{l: log, info: slog.LevelInfo, obs: l.obs, rep: l.rep}
	mgr := &Manager{log: l}
	m, err := plugins.New(opaConfig, uuid.NewString(), inmem.New(), plugins.Logger(l), plugins.ConsoleLogger(console),
		plugins.WithDistributedTracingOpts(tracing.NewOptions(limitOption{mgr}))) // download.go
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, err
	}
	mgr.m = m
	return mgr, nil
}

// Plugins is OPA's manager, for OPA's plugins (logs, download).
func (m *Manager) Plugins() *plugins.Manager { return m.m }

// Labels are the labels decisions carry: id, version and the configured ones.
func (m *Manager) Labels() map[string]string { return m.m.Labels() }

// Start starts the registered plugins.
func (m *Manager) Start(ctx context.Context) error { return m.m.Start(ctx) }

// Stop stops the plugins, giving them until ctx ends (the decision-log
// plugin uploads what it holds).
func (m *Manager) Stop(ctx context.Context) {
	m.m.Stop(ctx)
	m.log.rep.flush(m.log.l)
}

// SetCompiler makes compiler, with the bundle data data, what OPA's plugins
// evaluate with (the mask policy), and tells them (OPA's compiler
// triggers: the plugins prepare their queries again).
func (m *Manager) SetCompiler(ctx context.Context, compiler *ast.Compiler, data map[string]any) error {
	params := storage.TransactionParams{Write: true, Context: storage.NewContext()}
	plugins.SetCompilerOnContext(params.Context, compiler)
	if data == nil {
		data = map[string]any{}
	}
	// A JSON round trip gives the store plain JSON types.
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	return storage.Txn(ctx, m.m.Store, params, func(txn storage.Transaction) error {
		// The commit runs the manager's trigger, which installs the
		// compiler from the context and calls the plugins' triggers.
		return m.m.Store.Write(ctx, txn, storage.ReplaceOp, storage.RootPath, doc)
	})
}

// ObserveErrors calls f with the format string of every error a plugin
// logs (before formatting: stable to match on), with the plugin's name.
// OPA's plugins report some failures only by logging them.
func (m *Manager) ObserveErrors(f func(plugin, format string)) {
	m.log.obs.mu.Lock()
	defer m.log.obs.mu.Unlock()
	m.log.obs.f = append(m.log.obs.f, f)
}

type observers struct {
	mu sync.Mutex
	f  []func(plugin, format string)
}

// logger is OPA's logging.Logger over slog.
type logger struct {
	l      *slog.Logger
	fields map[string]any
	info   slog.Level // the level of OPA's Info
	obs    *observers
	rep    *repeats
}

// RepeatEvery is how often one warning or error of a plugin (one message)
// reaches the log while it repeats: the first time, then at most once in
// that time with how many were left out. OPA's decision-log plugin logs
// an error for every decision over max_decisions_per_second, so a rate
// limit meant to shed load wrote a log line per decision shed. A message
// is what is written, not its format: OPA writes distinct ones with one
// ("%s" for each of discovery's configuration warnings, "%v." for each
// upload error), and keyed by format all but the first were left out.
const RepeatEvery = 10 * time.Second

// maxRepeats bounds the messages remembered: past it, those whose
// RepeatEvery has passed are forgotten (with the count of their repeats
// left out since, told only if they came again), and while every one is
// recent a new message is logged without being remembered.
const maxRepeats = 1024

// repeats are the warnings and errors seen recently, by plugin and
// message (at most maxRepeats).
type repeats struct {
	mu   sync.Mutex
	now  func() time.Time
	last map[repeatKey]*repeated
}

type repeatKey struct{ plugin, msg string }

type repeated struct {
	at    time.Time // when it last reached the log
	left  int       // left out since
	level slog.Level
}

// flush logs, once, each message left out since it last reached the log
// (with how many times): Stop calls it, so repeats that stopped coming are
// counted in the log too.
func (r *repeats) flush(log *slog.Logger) {
	r.mu.Lock()
	type told struct {
		k    repeatKey
		left int
		lvl  slog.Level
	}
	var out []told
	for k, e := range r.last {
		if e.left > 0 {
			out = append(out, told{k, e.left, e.level})
			e.left = 0
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b told) int { return cmp.Compare(a.k.msg, b.k.msg) })
	for _, t := range out {
		log.Log(context.Background(), t.lvl, t.k.msg, "plugin", t.k.plugin, "repeated", t.left)
	}
}

// pass reports whether the message reaches the log now, and how many of
// it were left out since it last did.
func (r *repeats) pass(plugin, msg string, level slog.Level) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	k := repeatKey{plugin, msg}
	e := r.last[k]
	if e == nil {
		if len(r.last) >= maxRepeats {
			for k, e := range r.last {
				if now.Sub(e.at) >= RepeatEvery {
					delete(r.last, k)
				}
			}
		}
		if len(r.last) < maxRepeats {
			r.last[k] = &repeated{at: now, level: level}
		}
		return true, 0
	}
	if now.Sub(e.at) < RepeatEvery {
		e.left++
		return false, 0
	}
	left := e.left
	e.at, e.left = now, 0
	return true, left
}

func (l *logger) log(level slog.Level, format string, a []any) {
	if level == slog.LevelError {
		plugin, _ := l.fields["plugin"].(string)
		l.obs.mu.Lock()
		fs := l.obs.f
		l.obs.mu.Unlock()
		for _, f := range fs {
			f(plugin, format)
		}
	}
	if !l.l.Enabled(context.Background(), level) {
		return
	}
	// OPA's plugins name their URLs (a request's "url", a failed
	// upload's error), queries and all: a presigned URL's signature, a
	// token given in a service's URL. They are shown redacted, as
	// everywhere in permatrix.
	msg := redact.Text(fmt.Sprintf(format, a...))
	left := 0
	if level >= slog.LevelWarn {
		plugin, _ := l.fields["plugin"].(string)
		var pass bool
		if pass, left = l.rep.pass(plugin, msg, level); !pass {
			return
		}
	}
	attrs := make([]any, 0, 2*len(l.fields)+2)
	for k, v := range l.fields {
		attrs = append(attrs, k, redact.Value(v))
	}
	if left > 0 {
		attrs = append(attrs, "repeated", left)
	}
	l.l.Log(context.Background(), level, msg, attrs...)
}

func (l *logger) Debug(f string, a ...any) { l.log(slog.LevelDebug, f, a) }
func (l *logger) Info(f string, a ...any)  { l.log(l.info, f, a) }
func (l *logger) Warn(f string, a ...any)  { l.log(slog.LevelWarn, f, a) }
func (l *logger) Error(f string, a ...any) { l.log(slog.LevelError, f, a) }

func (l *logger) WithFields(fields map[string]any) logging.Logger {
	merged := make(map[string]any, len(l.fields)+len(fields))
	for k, v := range l.fields {
		merged[k] = v
	}
	for k, v := range fields {
		merged[k] = v
	}
	return &logger{l: l.l, fields: merged, info: l.info, obs: l.obs, rep: l.rep}
}

func (l *logger) GetLevel() logging.Level {
	ctx := context.Background()
	switch {
	case l.l.Enabled(ctx, slog.LevelDebug):
		return logging.Debug
	case l.l.Enabled(ctx, slog.LevelInfo):
		return logging.Info
	case l.l.Enabled(ctx, slog.LevelWarn):
		return logging.Warn
	}
	return logging.Error
}

// SetLevel is a no-op: the level is slog's.
func (l *logger) SetLevel(logging.Level) {}
