package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix/internal/bundlepoll"
	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
	"github.com/permatrix/permatrix/internal/redact"
)

// loadConfig reads the --config file, if any, and sets the flags it sets
// that were not given (on the command line or as PERMATRIX_*).
func loadConfig(flags *pflag.FlagSet, path string) (*config.File, error) {
	if path == "" {
		return nil, nil
	}
	return readConfig(flags, path)
}

// readConfig reads a configuration file and sets the flags it gives:
// every problem at once, the file's own (syntax, keys, OPA's sections)
// and its values' against the flags, ordered by line. serve and
// `config validate` read a file alike.
func readConfig(flags *pflag.FlagSet, path string) (*config.File, error) {
	file, err := config.Load(path)
	if file == nil {
		// The file itself cannot be read: say which setting named it.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("configuration file %s (--config): %w", path, pe.Err)
		}
		return nil, err
	}
	var probs *config.Problems
	if err != nil && !errors.As(err, &probs) {
		return nil, err
	}
	if aerr := file.Apply(flags); aerr != nil {
		var more *config.Problems
		if !errors.As(aerr, &more) {
			return nil, aerr
		}
		if probs == nil {
			probs = &config.Problems{Path: more.Path}
		}
		probs.List = append(probs.List, more.List...)
	}
	if probs != nil {
		probs.Sort()
		return nil, probs
	}
	return file, nil
}

// plugins are serve's uses of OPA's management APIs: OPA's plugin
// manager, the decision log, the bundle poller and status reports, each
// only if configured.
type plugins struct {
	mgr    *management.Manager
	dlog   *decisionlog.Logger
	source *bundlepoll.Source
	poller *bundlepoll.Poller
	report func(error) // the poller's outcomes, once the server exists
	// bundle is the status of a bundle serve reads itself (--bundle PATH,
	// the embedded one) for OPA's status plugin; nil without a status
	// section, or when the poller reports it.
	bundle *management.BundleStatus
	// cancelRun ends the context the manager's plugins run in (the status
	// plugin's reports): stop's, not SIGTERM's.
	cancelRun context.CancelFunc
	log       *slog.Logger
}

// urlBundleService names the service of serve --bundle URL.
const urlBundleService = "permatrix-bundle-url"

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// opaConfig is OPA's configuration from the file, and the bundles section:
// the file's, or one made for --bundle URL (a service of its own).
func opaConfig(o serveOptions, file *config.File) (opaCfg, bundles []byte, err error) {
	m := map[string]any{}
	if file != nil {
		if file.OPA != nil {
			if err := json.Unmarshal(file.OPA, &m); err != nil {
				return nil, nil, err
			}
		}
		bundles = file.Bundles
	}
	switch {
	case bundles != nil && o.bundle != "":
		return nil, nil, errors.New("give one of --bundle (server.bundle) and the bundles section")
	case isURL(o.bundle):
		u, err := url.Parse(o.bundle)
		if err != nil || u.Host == "" {
			return nil, nil, fmt.Errorf("--bundle %q: not a URL", redact.URL(o.bundle))
		}
		svc := map[string]any{"name": urlBundleService, "url": (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}).String()}
		switch s := m["services"].(type) {
		case nil:
			m["services"] = map[string]any{urlBundleService: svc}
		case map[string]any:
			s[urlBundleService] = svc
		case []any:
			m["services"] = append(s, svc)
		}
		resource := strings.TrimPrefix(u.EscapedPath(), "/")
		if u.RawQuery != "" {
			resource += "?" + u.RawQuery
		}
		bundles, _ = json.Marshal(map[string]any{decisionlog.BundleName: map[string]any{"service": urlBundleService, "resource": resource}})
	}
	if len(m) > 0 {
		opaCfg, _ = json.Marshal(m)
	}
	return opaCfg, bundles, nil
}

// startPlugins starts what the options and the file ask for: the plugin
// manager when decisions are logged or the bundle is downloaded.
func startPlugins(ctx context.Context, o serveOptions, file *config.File, engine *opa.Engine, log *slog.Logger) (*plugins, error) {
	p := &plugins{log: log, report: func(error) {}}
	opaCfg, bundles, err := opaConfig(o, file)
	if err != nil {
		return nil, err
	}
	var decisionLogs, status []byte
	if file != nil {
		decisionLogs, status = file.DecisionLogs, file.Status
	}
	logging := o.decisionLog != "" || decisionLogs != nil
	switch {
	case !logging && len(o.decisionLogMask) > 0:
		return nil, errors.New("--decision-log-mask needs a decision log (--decision-log, or the decision_logs section)")
	case bundles != nil && o.watch:
		return nil, errors.New("--watch watches files: a downloaded bundle is polled (bundles.*.polling)")
	case bundles != nil && o.verify.Key != "" && !isURL(o.bundle):
		return nil, errors.New("--verification-key is for --bundle: the bundles section verifies with keys and bundles.*.signing")
	case !logging && bundles == nil && opaCfg == nil && status == nil:
		return p, nil
	}
	if p.mgr, err = management.New(ctx, opaCfg, log); err != nil {
		return nil, fmt.Errorf("OPA configuration: %w", err)
	}
	if o.tracing != nil {
		p.mgr.TraceRequests(o.tracing.Transport)
	}
	if bundles != nil {
		if err := p.newPoller(o, bundles, status != nil, engine, log); err != nil {
			p.stop(time.Second)
			return nil, err
		}
	}
	if logging {
		p.dlog, err = decisionlog.New(ctx, decisionlog.Options{File: o.decisionLog, Config: decisionLogs, Mask: o.decisionLogMask, Manager: p.mgr, Logger: log})
		if err != nil {
			p.stop(time.Second)
			return nil, fmt.Errorf("decision log: %w", err)
		}
		p.dlog.Attach(engine)
	}
	// The status plugin last, just before Start: OPA's decision-log
	// plugin, once it finds it, hands it each upload's outcome and waits
	// until its loop (started by Start) takes it, and plugins' states
	// told it once started wait for a report in flight; the others'
	// errors stop nothing that waits on it.
	if status != nil {
		if err := p.mgr.EnableStatus(status, urlBundleService); err != nil {
			p.stop(time.Second)
			return nil, fmt.Errorf("status: %w", err)
		}
		if bundles == nil {
			p.bundle = p.mgr.BundleStatus(management.BundleName)
		}
	}
	// Not SIGTERM's context: the status plugin's reports would fail from
	// the signal on (logged as errors), those of the plugins stopping
	// too. stop ends it when its timeout passes, so that a report to a
	// control plane that does not answer (OPA's decision-log plugin
	// waits on it) cannot hold the shutdown past it.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancelRun = cancel
	if err := p.mgr.Start(runCtx); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	return p, nil
}

// newPoller makes the poller of the bundles section; with reportStatus,
// its outcomes go to OPA's status plugin too.
func (p *plugins) newPoller(o serveOptions, bundles []byte, reportStatus bool, engine *opa.Engine, log *slog.Logger) error {
	mgr := p.mgr.Plugins()
	src, err := bundlepoll.ParseConfig(bundles, mgr.Services(), mgr.PublicKeys())
	if err != nil {
		return err
	}
	if o.verify.Key != "" {
		v, err := opa.Verification(o.verify)
		if err != nil {
			return err
		}
		src.SetVerification(v)
	}
	p.source = src
	var status *management.BundleStatus
	if reportStatus {
		status = p.mgr.BundleStatus(src.Name)
	}
	p.poller, err = bundlepoll.New(bundlepoll.Options{Source: src, Manager: p.mgr, Activate: engine.Activate,
		Report: func(err error) { p.report(err) }, Status: status, Logger: log})
	return err
}

// startPolling starts the poller, its outcomes reported to report.
func (p *plugins) startPolling(ctx context.Context, report func(error)) {
	p.report = report // before the poller's goroutine starts
	p.poller.Start(ctx)
}

// bundleName is the name the bundles section gives its bundle, the one
// OPA's status reports name it by; "" for serve's own (--bundle, the
// embedded one), named decisionlog.BundleName. Decisions, /health?bundles
// and /v1/status name it so too: one name for a control plane to match.
func (p *plugins) bundleName() string {
	if p.source == nil {
		return ""
	}
	return p.source.Name
}

// decisionLogger is the service's decision logger (a nil interface when
// none).
func (p *plugins) decisionLogger() pdp.DecisionLogger {
	if p.dlog == nil {
		return nil
	}
	return p.dlog
}

// stop stops polling, uploads what the decision log holds (within
// timeout), closes its file and stops the manager.
func (p *plugins) stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if p.cancelRun != nil {
		context.AfterFunc(ctx, p.cancelRun)
	}
	if p.poller != nil {
		p.poller.Stop(ctx)
	}
	if p.dlog != nil {
		if err := p.dlog.Close(ctx); err != nil {
			p.log.Error("closing the decision log", "err", err)
		}
	}
	if p.mgr != nil {
		p.mgr.Stop(ctx)
	}
}
