// Package bundlepoll keeps the policy bundle up to date from a bundle
// server configured in OPA's vocabulary (services, bundles, keys), through
// OPA's own downloader (github.com/open-policy-agent/opa/v1/download):
// polling with the last bundle's ETag in If-None-Match, long polling when
// the server offers it, backoff after errors, size limits, signature
// verification with the configured keys. Activation stays permatrix's
// (Options.Activate, i.e. pdp.Service.Activate: compiled beside the active
// bundle, probed, swapped atomically); a bundle that fails to verify, read
// or activate leaves the last good one serving. Every request and its
// outcome can go to OPA's status plugin (Options.Status), as OPA's bundle
// plugin tells it.
//
// With persist, the last activated bundle is kept on disk (OPA's layout:
// <persistence_directory>/bundles/<name>/bundle.tar.gz) and activated at
// startup, so that a restart while the bundle server is down serves the
// last good policy.
package bundlepoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"

	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
)

// Source is one bundle of OPA's bundles configuration.
type Source struct {
	Name string
	src  *bundleplugin.Source
}

// Service is the service the bundle is downloaded from.
func (s *Source) Service() string { return s.src.Service }

// Resource is the bundle's path on the service, for logs: its query, if
// any, is hidden (Redact).
func (s *Source) Resource() string { return s.Redact(s.src.Resource) }

// Redact hides the query of the bundle's resource in msg: a presigned URL
// carries its signature there, and what the poller reports is
// /health?bundles' last_error, which anyone reaching the server reads
// (OPA's downloader errors hold the URL it asked).
func (s *Source) Redact(msg string) string {
	if _, q, ok := strings.Cut(s.src.Resource, "?"); ok && q != "" {
		return strings.ReplaceAll(msg, q, "redacted")
	}
	return msg
}

// redacted is an error whose message is redacted; errors.Is and As still
// see the original.
type redacted struct {
	err error
	msg string
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

// SizeLimit is the largest file of the bundle read, in bytes.
func (s *Source) SizeLimit() int64 { return s.src.SizeLimitBytes }

// Persist reports whether the bundle is kept on disk.
func (s *Source) Persist() bool { return s.src.Persist }

// SetVerification sets the keys the bundle's signature is verified with
// (serve's --verification-* flags, for --bundle URL).
func (s *Source) SetVerification(v *bundle.VerificationConfig) { s.src.Signing = v }

// DefaultSizeLimit bounds a downloaded bundle when size_limit_bytes is not
// configured: OPA's default is 1 GiB, permatrix's bundles are kilobytes,
// and a hostile server should not fill the memory. The same bound as a
// bundle read once from a URL (--bundle URL for check, matrix, …).
const DefaultSizeLimit = opa.MaxFetchBytes

// ParseConfig reads OPA's bundles section (JSON) for the services and keys
// configured, with OPA's defaults (polling every 60 to 120 s) but for the
// size limit (DefaultSizeLimit). permatrix serves one bundle, downloaded
// from a service: exactly one entry, not a file:// resource (serve
// --bundle PATH [--watch] reads local ones), with periodic polling.
func ParseConfig(raw []byte, services []string, keyConfigs map[string]*keys.Config) (*Source, error) {
	cfg, err := bundleplugin.NewConfigBuilder().WithBytes(raw).WithServices(services).WithKeyConfigs(keyConfigs).
		WithTriggerMode(ptr(plugins.TriggerPeriodic)).Parse()
	if err != nil {
		return nil, err
	}
	if cfg == nil || len(cfg.Bundles) != 1 {
		n := 0
		if cfg != nil {
			n = len(cfg.Bundles)
		}
		return nil, fmt.Errorf("bundles: permatrix serves one bundle, %d configured", n)
	}
	for name, src := range cfg.Bundles {
		switch {
		case strings.HasPrefix(src.Resource, "file://"):
			return nil, fmt.Errorf("bundles.%s.resource %q: a local bundle is server.bundle (--bundle PATH, with --watch to follow changes)", name, src.Resource)
		case *src.Trigger != plugins.TriggerPeriodic:
			return nil, fmt.Errorf("bundles.%s.trigger %q: permatrix polls (periodic)", name, *src.Trigger)
		}
		var given map[string]map[string]json.RawMessage
		if json.Unmarshal(raw, &given) == nil {
			if _, ok := given[name]["size_limit_bytes"]; !ok {
				src.SizeLimitBytes = DefaultSizeLimit
			}
		}
		return &Source{Name: name, src: src}, nil
	}
	panic("unreachable")
}

func ptr[T any](v T) *T { return &v }

// Options configure a Poller.
type Options struct {
	Source  *Source
	Manager *management.Manager
	// Activate makes a downloaded bundle the active one (or fails, leaving
	// the last good one active).
	Activate func(context.Context, *opa.Bundle) (*opa.Policy, error)
	// Report is told of every outcome: nil after an activation, the error
	// after a failed download, verification or activation.
	Report func(error)
	// Status, if any, is told every request and its outcome, for OPA's
	// status plugin (a control plane's view of the bundle).
	Status *management.BundleStatus
	Logger *slog.Logger
	// StallTimeout bounds how long a download may take beyond what it asks
	// of the server: its body once its headers have arrived, a long poll's
	// headers once its wait is over (DefaultStallTimeout if zero).
	StallTimeout time.Duration
}

// DefaultStallTimeout bounds how long a downloaded bundle's body may take
// after its headers, and a long poll's headers after its wait. OPA's
// response_header_timeout_seconds ends at the headers and is off for long
// polls, and OPA's downloader reads the body without a deadline: a server
// (or proxy) that stalls mid-body, or holds a long poll past its wait,
// would stop polling for good, silently. Permatrix's bundles are
// kilobytes; 64 MiB at 1 MB/s fits.
const DefaultStallTimeout = 2 * time.Minute

// Poller downloads and activates bundles until Stop.
type Poller struct {
	o       Options
	d       *download.Downloader
	dir     string // where the bundle is persisted; "" if not
	log     *slog.Logger
	mu      sync.Mutex
	etag    string // of the active bundle
	started bool
}

// New prepares a poller. Activate the persisted bundle, if any
// (ActivatePersisted), then Start it.
func New(o Options) (*Poller, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Report == nil {
		o.Report = func(error) {}
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	src := o.Source.src
	client := o.Manager.Plugins().Client(src.Service)
	if client.Config() == nil || client.Config().URL == "" {
		return nil, fmt.Errorf("bundles.%s.service %q: no such service", o.Source.Name, src.Service)
	}
	p := &Poller{o: o, log: o.Logger.With("bundle", o.Source.Name, "service", src.Service, "resource", o.Source.Resource())}
	// OPA's reader bounds each file of the bundle; the manager's clients
	// bound the bundle as a whole (OPA's reader holds all of its files at
	// once) and the time it takes.
	o.Manager.LimitDownloads(src.SizeLimitBytes, o.StallTimeout)
	if src.Persist {
		root, err := o.Manager.Plugins().GetConfig().GetPersistenceDirectory()
		if err != nil {
			return nil, err
		}
		p.dir = filepath.Join(root, "bundles", o.Source.Name)
	}
	p.d = download.New(src.Config, client, src.Resource).
		WithCallback(p.update).
		WithBundleVerificationConfig(src.Signing).
		WithSizeLimitBytes(src.SizeLimitBytes).
		WithBundlePersistence(src.Persist).
		WithBundleName(o.Source.Name).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	return p, nil
}

// PersistedPath is where the bundle is persisted ("" if it is not).
func (p *Poller) PersistedPath() string {
	if p.dir == "" {
		return ""
	}
	return filepath.Join(p.dir, "bundle.tar.gz")
}

// ActivatePersisted activates the bundle persisted by an earlier run, if
// there is one, verified as a download is. It reports whether one was
// activated; a persisted bundle that no longer reads or activates is
// logged and skipped (the download replaces it).
func (p *Poller) ActivatePersisted(ctx context.Context) bool {
	path := p.PersistedPath()
	if path == "" {
		return false
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false
	}
	// Bounded as its download was: the file may have been replaced since.
	b, err := opa.ReadBundle(ctx, path, opa.ReadOptions{Verification: p.o.Source.src.Signing, MaxBytes: p.o.Source.src.SizeLimitBytes})
	if err == nil {
		var pol *opa.Policy
		if pol, err = p.o.Activate(ctx, b); err == nil {
			p.o.Status.Activated(pol.BundleRevision(), pol.ActivatedAt)
			etag, _ := os.ReadFile(filepath.Join(p.dir, "etag"))
			p.mu.Lock()
			p.etag = strings.TrimSpace(string(etag))
			p.mu.Unlock()
			p.d.SetCache(p.etag)
			p.log.Info("activated the persisted bundle; polling for newer ones", "path", path, "revision", pol.BundleRevision())
			return true
		}
	}
	p.log.Error("the persisted bundle is not usable; waiting for the bundle server", "path", path, "err", err)
	p.o.Status.Failed(err)
	return false
}

// Start starts polling: the first download at once, then every
// polling.min_delay_seconds to max_delay_seconds (OPA's defaults 60 to
// 120), or as soon as a long-polling server answers.
func (p *Poller) Start(ctx context.Context) {
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	p.d.Start(ctx)
}

// Stop stops polling; a download in flight is abandoned.
func (p *Poller) Stop(ctx context.Context) {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if started {
		p.d.Stop(ctx)
	}
}

// update is the downloader's callback, on its goroutine.
func (p *Poller) update(ctx context.Context, u download.Update) error {
	p.o.Status.Requested()
	if u.Error != nil {
		p.fail("bundle download failed; the active bundle keeps serving", u.Error)
		return u.Error
	}
	if u.Bundle == nil {
		// 304 Not Modified (or a long poll that timed out): the server is
		// back, the active bundle current.
		p.o.Status.NotModified()
		p.o.Report(nil)
		return nil
	}
	p.o.Status.Downloaded(u.Bundle.Type(), u.Size)
	err := p.activate(ctx, u)
	if err != nil {
		p.fail("bundle refused; the active bundle keeps serving", err)
	}
	return err
}

// fail reports err. The downloader forgets the ETag of a failed download;
// it is given back the active bundle's, so that the server can answer
// 304 while nothing changed.
func (p *Poller) fail(msg string, err error) {
	p.mu.Lock()
	etag := p.etag
	p.mu.Unlock()
	p.d.SetCache(etag)
	if m := p.o.Source.Redact(err.Error()); m != err.Error() {
		err = redacted{err, m}
	}
	p.log.Error(msg, "err", err.Error())
	p.o.Status.Failed(err)
	p.o.Report(err)
}

func (p *Poller) activate(ctx context.Context, u download.Update) error {
	if u.Bundle.Type() != bundle.SnapshotBundleType {
		return fmt.Errorf("a %s bundle: permatrix takes snapshot bundles only", u.Bundle.Type())
	}
	pol, err := p.o.Activate(ctx, opa.FromOPA(u.Bundle))
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.etag = u.ETag
	p.mu.Unlock()
	p.o.Status.Activated(pol.BundleRevision(), pol.ActivatedAt)
	p.o.Report(nil)
	p.log.Info("bundle activated", "revision", pol.BundleRevision(), "etag", u.ETag)
	if p.dir != "" && u.Raw != nil {
		if err := p.persist(u.Raw, u.ETag); err != nil {
			// Serving is unaffected; a restart would start from an older
			// persisted bundle, or none.
			p.log.Error("persisting the bundle failed", "dir", p.dir, "err", err)
		}
	}
	return nil
}

// persist writes the bundle and its ETag, each replaced atomically.
func (p *Poller) persist(raw io.Reader, etag string) error {
	if err := os.MkdirAll(p.dir, 0o750); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(p.dir, "bundle.tar.gz"), raw); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(p.dir, "etag"), strings.NewReader(etag))
}

func writeAtomic(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
