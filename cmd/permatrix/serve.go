package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/stats"

	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/console"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/internal/extauthz"
	"github.com/permatrix/permatrix/internal/gateway"
	"github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/listen"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/tracing"
	"github.com/permatrix/permatrix/internal/watch"
)

type serveOptions struct {
	config                   string
	listen                   listenOptions
	access                   accessOptions
	store                    storeOptions
	bundle                   string
	consistencyTimeout       time.Duration
	cacheSize                int
	evaluator                string
	adminToken, adminTokenFn string
	logLevel, decisionLog    string
	decisionLogMask          []string
	bodyLimit                int64
	shutdownTimeout          time.Duration
	watch                    bool
	watchDebounce            time.Duration
	verify                   opa.VerifyOptions
	defaultDecision          string
	console                  bool
	pprof                    bool
	tracing                  *tracing.Tracing // the file's distributed_tracing, started by runServe
}

func newServe() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the policy decision point (HTTP API)",
		Long: `Run the policy decision point. With no flags it serves the policies and data
embedded in the binary, keeps assignments in ./permatrix.db (or $PERMATRIX_DB) and
listens on 127.0.0.1:8181. Without --admin-token(-file) a random admin token is
generated and logged at startup. Forward-auth takes the caller from the
X-Forwarded-User header unless --identity says otherwise (docs/forward-auth.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The file sets the flags not given (flags and PERMATRIX_* win),
			// before o is read.
			file, err := loadConfig(cmd.Flags(), o.config)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), cmd.Flags(), o, file)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "configuration file (YAML, docs/config.md): OPA's services, bundles, decision_logs, status, keys, labels and permatrix's server, store, identity, routes; flags and PERMATRIX_* override it")
	o.listen.register(f)
	o.access.register(f)
	o.store.register(f, true)
	f.DurationVar(&o.consistencyTimeout, "consistency-timeout", time.Second, "how long a check with min_revision waits for the store to reach it before answering 503")
	f.IntVar(&o.cacheSize, "decision-cache-size", pdp.DefaultCacheSize, "decisions the decision cache keeps (0: no cache; their estimated size at most 2 KiB each on average); a cached decision is never stale")
	f.StringVar(&o.evaluator, "evaluator", string(opa.VM), "what evaluates decisions and write verdicts: vm (OPA's plan of each query, interpreted; docs/architecture.md) or topdown (OPA's own evaluator)")
	f.StringVar(&o.bundle, "bundle", "", "policy bundle: a directory, a .tar.gz OPA bundle, or an http(s) URL polled for new revisions (default: the embedded one)")
	f.StringVar(&o.adminToken, "admin-token", "", "bearer token of the administration API")
	f.StringVar(&o.adminTokenFn, "admin-token-file", "", "file holding the admin token")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.decisionLog, "decision-log", "", "append decisions as JSON lines (OPA's decision-log format) to this file (- for stdout)")
	f.StringSliceVar(&o.decisionLogMask, "decision-log-mask", nil, "erase these JSON pointers from every logged decision, e.g. /input/context/password (OPA's mask, with the bundle's data.system.log.mask)")
	f.Int64Var(&o.bodyLimit, "body-limit", 1<<20, "largest request body in bytes")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to wait for in-flight requests on SIGTERM; those still running then are cut and serve exits 4")
	f.BoolVar(&o.watch, "watch", false, "reload the --bundle directory or file when it changes; a broken edit keeps the last good bundle serving")
	f.DurationVar(&o.watchDebounce, "watch-debounce", 300*time.Millisecond, "with --watch: wait this long after the last change before reloading")
	f.StringVar(&o.verify.Key, "verification-key", "", "verify the --bundle signature (a file, or each download of a URL) with this HMAC secret or PEM public key, or the file holding it")
	f.StringVar(&o.verify.KeyID, "verification-key-id", opa.DefaultKeyID, "name of the verification key (the signature's kid)")
	f.StringVar(&o.verify.Algorithm, "verification-alg", "RS256", "algorithm of the verification key (RS256, HS256, ES256, …)")
	f.StringVar(&o.verify.Scope, "verification-scope", "", "scope the signature must carry, if any")
	f.StringVar(&o.defaultDecision, "default-decision", http.DefaultDecision, "the document POST / answers for OPA clients that ask the default decision (OPA's default_decision)")
	f.BoolVar(&o.pprof, "pprof", false, "serve Go's runtime profiles at /debug/pprof/ to the operator (admin token), as OPA's --pprof")
	f.BoolVar(&o.console, "console", true, "serve the web console at /ui (static pages that use this API with the token the user types; docs/console.md)")
	return cmd
}

func adminToken(flags *pflag.FlagSet, o serveOptions, log *slog.Logger) (string, error) {
	t, err := givenAdminToken(flags, o.adminToken, o.adminTokenFn)
	if err != nil || t != "" {
		return t, err
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	t = hex.EncodeToString(b[:])
	log.Warn("no --admin-token given: generated one for this run", "admin_token", t)
	return t, nil
}

// givenAdminToken is the admin token of --admin-token (or
// PERMATRIX_ADMIN_TOKEN) or --admin-token-file, whichever the flags prefer
// when both are given, checked as usableToken checks it; "" when neither
// is given. serve and store backup read the token alike through it.
func givenAdminToken(flags *pflag.FlagSet, token, file string) (string, error) {
	if token != "" && file != "" {
		which, err := preferred(flags, "admin-token", "admin-token-file")
		if err != nil {
			return "", err
		}
		if which == "admin-token" {
			file = ""
		} else {
			token = ""
		}
	}
	switch {
	case token != "":
		if err := usableToken(token); err != nil {
			return "", fmt.Errorf("--admin-token: %w", err)
		}
		return token, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--admin-token-file: %s is empty", file)
		}
		if err := usableToken(t); err != nil {
			return "", fmt.Errorf("--admin-token-file %s: %w", file, err)
		}
		return t, nil
	}
	return "", nil
}

// logTopdown says what of an activated policy OPA's topdown evaluates
// though the vm was asked for (several times slower): a policy author's
// edit can do that without failing anything.
func logTopdown(log *slog.Logger, p *opa.Policy) {
	for _, why := range p.Topdown() {
		log.Warn("evaluated by topdown, slower than the vm (docs/architecture.md, \"The evaluator\")", "why", why, "bundle_revision", p.BundleRevision())
	}
}

// usableToken checks that a token can be sent in an Authorization header:
// one line of no control characters, and no spaces at either end (HTTP
// trims them from a header's value). A token that cannot be sent would
// make an admin API nobody can use.
func usableToken(t string) error {
	if strings.TrimSpace(t) != t {
		return errors.New("the token begins or ends with white space, which an Authorization header cannot carry")
	}
	if i := strings.IndexFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("the token holds a control character (%q at byte %d: a second line?), which an Authorization header cannot carry", t[i], i)
	}
	return nil
}

// bundleLoadOptions checks the bundle flags and turns them into load options.
func bundleLoadOptions(o serveOptions) (opa.ReadOptions, error) {
	var lo opa.ReadOptions
	if o.watch {
		switch {
		case o.bundle == "":
			return lo, errors.New("--watch needs --bundle: a directory (the repository: policies/ and systems/) or a .tar.gz file; the embedded bundle never changes")
		case strings.HasPrefix(o.bundle, "http://") || strings.HasPrefix(o.bundle, "https://"):
			return lo, errors.New("--watch watches files: give --bundle a directory or a .tar.gz, not a URL")
		}
	}
	if o.verify.Key == "" {
		return lo, nil
	}
	vc, err := opa.Verification(o.verify)
	if err != nil {
		return lo, err
	}
	lo.Verification = vc
	return lo, nil
}

// reloader reloads the bundle for serve --watch.
type reloader struct {
	src    string
	opts   opa.ReadOptions
	svc    *pdp.Service
	srv    *http.Server
	status *management.BundleStatus // nil: no status section
	log    *slog.Logger
	mu     sync.Mutex // one reload at a time
}

// reload reads and compiles the bundle again and swaps it in. The swap is
// one atomic pointer store (internal/opa): a check in flight finishes on
// the policy it started with. A bundle that does not load or compile is
// not swapped in: the last good one keeps serving, the error (with
// file:line) is logged, shown by /health?bundles and counted in
// permatrix_bundle_reload_failures_total.
func (r *reloader) reload(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return // shutting down: not a failed reload
	}
	old := ""
	if p := r.svc.Policy(); p != nil {
		old = p.BundleRevision()
	}
	r.status.Requested()
	b, err := opa.ReadBundle(ctx, r.src, r.opts)
	if err == nil {
		r.status.Downloaded(bundle.SnapshotBundleType, 0)
		var p *opa.Policy
		if p, err = r.svc.Activate(ctx, b); err == nil {
			r.status.Activated(p.BundleRevision(), p.ActivatedAt)
			r.srv.SetBundleError(nil)
			r.log.Info("bundle reloaded", "bundle", r.src, "revision", p.BundleRevision(), "previous_revision", old)
			return
		}
	}
	r.status.Failed(err)
	r.srv.SetBundleError(err)
	r.log.Error("bundle reload failed; the last good bundle keeps serving", "bundle", r.src, "revision", old, "err", err.Error())
}

// valueProblem is a serve flag's value serve refuses.
type valueProblem struct {
	flag string
	err  error
}

// serveValueProblems checks the values of serve's flags that need no file,
// store or network to check: serve refuses them before it starts, and
// `config validate` reports them at the file's lines.
func serveValueProblems(flags *pflag.FlagSet) []valueProblem {
	var probs []valueProblem
	add := func(flag string, err error) {
		if err != nil {
			probs = append(probs, valueProblem{flag, err})
		}
	}
	str := func(flag string) string { return flags.Lookup(flag).Value.String() }
	_, err := newLogger(str("log-level"))
	add("log-level", err)
	_, err = opa.ParseEvaluator(str("evaluator"))
	add("evaluator", err)
	// The server takes 0 or less as "the default": refused here, so that
	// what is given is what is served.
	if n, _ := flags.GetInt64("body-limit"); n < 1 {
		add("body-limit", fmt.Errorf("--body-limit %d: want a number of bytes, 1 or more", n))
	}
	if n, _ := flags.GetInt("max-connections"); n < 1 {
		add("max-connections", fmt.Errorf("--max-connections %d: want a number of connections, 1 or more", n))
	}
	if n, _ := flags.GetInt("max-connections-per-client"); n < 0 {
		add("max-connections-per-client", fmt.Errorf("--max-connections-per-client %d: want a number of connections, or 0 for no bound", n))
	}
	if n, _ := flags.GetInt("max-requests-in-flight"); n < 1 {
		add("max-requests-in-flight", fmt.Errorf("--max-requests-in-flight %d: want a number of requests, 1 or more", n))
	}
	if d, _ := flags.GetDuration("consistency-timeout"); d <= 0 {
		add("consistency-timeout", fmt.Errorf("--consistency-timeout %s: want a duration over 0", d))
	}
	if subjectHeader, _ := flags.GetBool("allow-subject-header"); subjectHeader && str("identity") == "jwt" {
		add("allow-subject-header", identity.ErrJWTWithSubjectHeader)
	}
	hosts, _ := flags.GetStringSlice("allowed-hosts")
	add("allowed-hosts", http.CheckAllowedHosts(hosts))
	if _, err := http.DecisionPath(str("default-decision")); err != nil {
		add("default-decision", fmt.Errorf("--default-decision: %w", err))
	}
	if _, _, err := (storeOptions{url: str("store"), db: str("db")}).target(flags); err != nil {
		flag := "store"
		if !flags.Changed("store") {
			flag = "db"
		}
		add(flag, err)
	}
	return probs
}

// checkServeValues is serveValueProblems as an error: the values the
// configuration file gave, each at its key's line (as config validate
// prints them), else the first value given on the command line or in the
// environment.
func checkServeValues(flags *pflag.FlagSet, file *config.File) error {
	var fromFile *config.Problems
	for _, p := range serveValueProblems(flags) {
		key, line, ok := "", 0, false
		if file != nil && flags.Lookup(p.flag).Annotations[config.Annotation] != nil {
			key, line, ok = file.Key(p.flag)
		}
		if !ok {
			return p.err
		}
		if fromFile == nil {
			fromFile = &config.Problems{Path: file.Path}
		}
		fromFile.Add(line, key+": "+p.err.Error())
	}
	if fromFile != nil {
		fromFile.Sort()
		return fromFile
	}
	return nil
}

func runServe(ctx context.Context, flags *pflag.FlagSet, o serveOptions, file *config.File) error {
	if err := checkServeValues(flags, file); err != nil {
		return err
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	evaluator, err := opa.ParseEvaluator(o.evaluator)
	if err != nil {
		return err
	}
	if gc, limit := tuneMemory(); gc > 0 || limit > 0 {
		var set []any
		if gc > 0 {
			set = append(set, "gogc", gc)
		}
		if limit > 0 {
			set = append(set, "gomemlimit_bytes", limit)
		}
		log.Info("garbage collector tuned for decisions (GOGC and GOMEMLIMIT override)", set...)
	}
	token, err := adminToken(flags, o, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tracer, stopTracing, err := startTracing(ctx, file, log)
	if err != nil {
		return err
	}
	defer stopTracing(o.shutdownTimeout)
	o.tracing = tracer

	db, where, err := o.store.open(ctx, flags, log)
	if err != nil {
		return damaged(err, log, where)
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	if fleet, ok := db.(*etcd.Store); ok {
		if err := claimPrefix(ctx, fleet, where, log); err != nil {
			return err
		}
	}

	// print() in the policies goes to the log (info), bounded, as
	// `opa run --server` prints to its own.
	engine := opa.NewEngine(db, opa.WithEvaluator(evaluator), opa.WithPrintHook(opa.PrintLog(log)))
	plugins, err := startPlugins(ctx, o, file, engine, log)
	if err != nil {
		return err
	}
	defer plugins.stop(o.shutdownTimeout)

	svc := pdp.New(db, engine, log, plugins.decisionLogger())
	svc.ConsistencyTimeout = o.consistencyTimeout
	svc.BundleName = plugins.bundleName()
	svc.SetCacheSize(o.cacheSize)
	if tracer != nil {
		svc.Trace = tracer.Span
	}
	acc, err := o.access.load(ctx, log)
	if err != nil {
		return err
	}
	defer acc.close()
	var loadOpts opa.ReadOptions
	if plugins.poller == nil {
		if loadOpts, err = bundleLoadOptions(o); err != nil {
			return err
		}
		// A bundle that does not serve stops serve; the status plugin's
		// last report (at the manager's Stop) tells the control plane why.
		plugins.bundle.Requested()
		b, err := opa.ReadBundle(ctx, o.bundle, loadOpts)
		if err != nil {
			plugins.bundle.Failed(err)
			return err
		}
		plugins.bundle.Downloaded(bundle.SnapshotBundleType, 0)
		p, err := svc.Activate(ctx, b)
		if err != nil {
			plugins.bundle.Failed(err)
			return fmt.Errorf("bundle: %w", err)
		}
		plugins.bundle.Activated(p.BundleRevision(), p.ActivatedAt)
	} else {
		plugins.poller.ActivatePersisted(ctx)
	}
	p := svc.Policy()
	if p != nil {
		if err := acc.validate(p.Catalog, pdp.ValidateCheck); err != nil {
			return err
		}
		logTopdown(log, p)
	}
	// A later bundle (reloaded, downloaded) that the routes do not fit is
	// served all the same — the checks of those routes then answer 400 —
	// and said so.
	engine.OnActivate(func(p *opa.Policy) {
		if err := acc.validate(p.Catalog, pdp.ValidateCheck); err != nil {
			log.Error("the routes do not fit the activated bundle", "err", err.Error(), "bundle_revision", p.BundleRevision())
		}
		logTopdown(log, p)
	})
	tlsCfg, err := o.listen.tls.Config()
	if err != nil {
		return err
	}
	cfg := http.Config{AdminToken: token, BodyLimit: o.bodyLimit, Logger: log,
		Identity: acc.identity, Routes: acc.routes, TLS: tlsCfg, DecisionLog: plugins.dlog,
		DefaultDecision: o.defaultDecision, BundleName: plugins.bundleName(), Version: version, Effective: effectiveConfig(flags, file), Pprof: o.pprof,
		AllowedHosts: o.listen.allowedHosts, MaxConnections: o.listen.maxConnections,
		MaxConnectionsPerClient: o.listen.maxConnectionsPerClient, MaxRequestsInFlight: o.listen.maxRequestsInFlight,
		Tracing: tracer}
	if o.console {
		cfg.Console = console.Handler()
	}
	if o.decisionLog != "" && o.decisionLog != "-" {
		cfg.DecisionLogFile = o.decisionLog
	}
	srv := http.NewServer(svc, cfg)
	if tracer != nil {
		srv.Metrics().Registry.MustRegister(tracingDropped(tracer))
	}
	if plugins.poller != nil {
		plugins.startPolling(ctx, srv.SetBundleError)
	}
	if o.watch {
		r := &reloader{src: o.bundle, opts: loadOpts, svc: svc, srv: srv, status: plugins.bundle, log: log}
		var ignore []string
		if cfg.DecisionLogFile != "" {
			ignore = append(ignore, cfg.DecisionLogFile)
		}
		if err := watch.Start(ctx, o.bundle, o.watchDebounce, func() { r.reload(ctx) }, func(err error) {
			log.Error("watching the bundle", "err", err, "bundle", o.bundle)
		}, ignore...); err != nil {
			return fmt.Errorf("--watch %s: %w", o.bundle, err)
		}
		log.Info("watching the bundle for changes", "bundle", o.bundle)
	}
	addr, err := srv.Listen(o.listen.addr)
	if err != nil {
		return err
	}
	attrs := []any{"addr", addr.String(), "url", srv.URL(), "identity", acc.identity.String()}
	if o.console && strings.HasPrefix(srv.URL(), "http") {
		attrs = append(attrs, "console", srv.URL()+console.Prefix+"/")
	}
	if o.listen.diagnosticAddr != "" {
		daddr, err := srv.ListenDiagnostic(o.listen.diagnosticAddr)
		if err != nil {
			return fmt.Errorf("--diagnostic-addr: %w", err)
		}
		attrs = append(attrs, "diagnostic_addr", daddr.String())
	}
	var grpcSrv *extauthz.Server
	if o.listen.grpcAddr != "" {
		var traceCalls stats.Handler
		if tracer != nil {
			traceCalls = tracer.GRPCStatsHandler()
		}
		grpcSrv = extauthz.New(extauthz.Config{Tracing: traceCalls,
			Gateway: &gateway.Gateway{Identity: acc.identity, Routes: acc.routes},
			Decide:  srv.Decide, ErrorJSON: http.ErrorJSON, Ready: srv.Ready, TLS: tlsCfg, Logger: log,
			MaxMessageBytes: int(min(o.bodyLimit, math.MaxInt32)), MaxConnections: o.listen.maxConnections,
			MaxConnectionsPerClient: o.listen.maxConnectionsPerClient, MaxRequestsInFlight: o.listen.maxRequestsInFlight,
		})
		if _, err := grpcSrv.Listen(o.listen.grpcAddr); err != nil {
			return fmt.Errorf("--grpc-addr: %w", err)
		}
		srv.Metrics().RegisterListener("grpc", grpcSrv.Connections())
		srv.Metrics().RegisterRequests("grpc", grpcSrv.Requests())
		srv.Metrics().RegisterHealthRequests("grpc", grpcSrv.Probes())
	}
	// Every listener is made: a passed socket none took would queue
	// connections nothing answers.
	if err := listen.UnusedActivated(); err != nil {
		return fmt.Errorf("--addr, --diagnostic-addr, --grpc-addr: %w", err)
	}
	attrs = append(attrs, "store", where, "store_revision", db.Revision())
	if p != nil {
		attrs = append(attrs, "bundle_revision", p.BundleRevision(), "systems", len(p.Catalog), "evaluator", p.Evaluator())
	} else {
		attrs = append(attrs, "bundle", "none yet: not ready until the bundle server answers")
	}
	if plugins.poller != nil {
		attrs = append(attrs, "bundle_service", plugins.source.Service(), "bundle_resource", plugins.source.Resource())
	}
	if acc.routes != nil {
		attrs = append(attrs, "routes", acc.routes.File(), "route_count", acc.routes.Len())
	}
	if grpcSrv != nil {
		attrs = append(attrs, "grpc_url", grpcSrv.URL())
	}
	log.Info("serving", attrs...)

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve() }()
	if grpcSrv != nil {
		go func() {
			if err := grpcSrv.Serve(); err != nil {
				errc <- fmt.Errorf("--grpc-addr: %w", err)
			}
		}()
	}
	select {
	case err := <-errc:
		if grpcSrv != nil {
			_ = grpcSrv.Shutdown(context.Background())
		}
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	// Both at once, within one --shutdown-timeout: one after the other,
	// the HTTP requests had only what the gRPC checks left of it.
	grpcDone := make(chan error, 1)
	go func() {
		if grpcSrv == nil {
			grpcDone <- nil
			return
		}
		grpcDone <- grpcSrv.Shutdown(sctx)
	}()
	httpErr := srv.Shutdown(sctx)
	grpcErr := <-grpcDone
	if err := <-errc; err != nil {
		return err
	}
	if errors.Is(grpcErr, context.DeadlineExceeded) || errors.Is(httpErr, context.DeadlineExceeded) {
		// A distinct exit code: the shutdown was not clean, whatever the
		// requests cut were doing is unknown to their clients.
		log.Error("shutdown: --shutdown-timeout passed and the requests in flight were cut", "shutdown_timeout", o.shutdownTimeout.String())
		return exitError{exitShutdownCut}
	}
	if httpErr != nil {
		log.Error("shutdown", "err", httpErr)
	}
	return nil
}

// exitShutdownCut is serve's exit code when SIGTERM's shutdown had to cut
// requests in flight (docs/security.md).
const exitShutdownCut = 4

// claimPrefix refuses a fleet's prefix nested with another fleet's (they
// would read each other's keys), and marks it as a fleet's. A check etcd
// did not answer (unreachable at start: the replica serves meanwhile) is
// said, and made at the next start.
func claimPrefix(ctx context.Context, fleet *etcd.Store, where string, log *slog.Logger) error {
	err := fleet.ClaimPrefix(ctx)
	var nested *etcd.NestedPrefixError
	switch {
	case errors.As(err, &nested):
		return fmt.Errorf("--store %s: %w", where, plain(err))
	case err != nil && ctx.Err() == nil:
		log.Warn("not checked whether the etcd prefix is nested with another fleet's (checked at the next start)", "store", where, "err", err)
	}
	return nil
}
