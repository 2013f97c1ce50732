package management

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/status"
	"github.com/open-policy-agent/opa/v1/util"
)

// ParseStatusConfig reads OPA's status section (JSON) for the services
// configured, as OPA's status plugin does, refusing what permatrix would
// otherwise ignore: a custom plugin to send to (permatrix has none), a
// trigger but periodic (nothing in permatrix triggers a manual upload,
// and OPA's plugin sends nothing by itself in the other modes),
// prometheus (permatrix's /metrics is its own), and a section that sends
// nowhere. Without service, OPA sends to its first service, which is any
// one of them when there are several: here there must be only one.
func ParseStatusConfig(raw []byte, services []string) (*status.Config, error) {
	var given map[string]json.RawMessage
	if err := util.Unmarshal(raw, &given); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	// Each refused key is one error (errors.Join), so that all are told.
	var refused []error
	for _, k := range []string{"plugin", "prometheus", "prometheus_config"} {
		if v, ok := given[k]; ok && string(v) != "null" && string(v) != "false" {
			switch k {
			case "plugin":
				refused = append(refused, errors.New("status.plugin: permatrix has no plugins to send status to (OPA's plugins section is not supported); give status.service or status.console"))
			default:
				refused = append(refused, fmt.Errorf("status.%s: not supported: OPA's status metrics are not exported, permatrix's /metrics has its own (bundle reloads, decision-log drops)", k))
			}
		}
	}
	var trigger plugins.TriggerMode
	if v, ok := given["trigger"]; ok && util.Unmarshal(v, &trigger) == nil && trigger != "" && trigger != plugins.TriggerPeriodic {
		refused = append(refused, fmt.Errorf("status.trigger %q: permatrix sends its status on every change (periodic, the default): nothing would trigger an upload", trigger))
	}
	if len(refused) > 0 {
		return nil, errors.Join(refused...)
	}
	var dest struct {
		Service string `json:"service"`
		Console bool   `json:"console"`
	}
	_ = util.Unmarshal(raw, &dest)
	if dest.Service == "" && !dest.Console && len(services) > 1 {
		sorted := slices.Sorted(slices.Values(services))
		return nil, fmt.Errorf("status.service: give one of %s (OPA would take any one of them)", strings.Join(sorted, ", "))
	}
	periodic := plugins.TriggerPeriodic
	cfg, err := status.NewConfigBuilder().WithBytes(raw).WithServices(services).WithTriggerMode(&periodic).Parse()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("status: sends nowhere: give status.service (one of the services) or status.console: true")
	}
	if _, err := statusPath(cfg.PartitionName); err != nil {
		return nil, err
	}
	return cfg, nil
}

// statusPath is the path of the reports OPA's status plugin sends for
// partition, as the request has it on its way out (isStatusReport): OPA's
// client trims the "/" around "/status/<partition>" and parses it into a
// URL, whose path is unescaped. A "?" or a "#" in the partition would
// start the URL's query or fragment: the report sent elsewhere than the
// partition says, refused.
func statusPath(partition string) (string, error) {
	u, err := url.Parse("http://h/" + strings.Trim("/status/"+partition, "/"))
	if err != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(partition, "#") {
		return "", fmt.Errorf("status.partition_name %q: not a path (a \"?\" or a \"#\" would start the report URL's query or fragment, a \"%%\" must start an escape)", partition)
	}
	return u.Path, nil
}

// EnableStatus registers OPA's status plugin, configured by OPA's status
// section (JSON), to start with the manager (call it before Start). The
// decision-log plugin reports its uploads to it by itself (as in OPA);
// the bundle's status comes from BundleStatus. Services in internal are
// not the configuration's (serve --bundle URL's): status neither names
// them nor defaults to them.
func (m *Manager) EnableStatus(raw []byte, internal ...string) error {
	services := slices.DeleteFunc(m.m.Services(), func(s string) bool { return slices.Contains(internal, s) })
	cfg, err := ParseStatusConfig(raw, services)
	if err != nil {
		return err
	}
	path, err := statusPath(cfg.PartitionName)
	if err != nil {
		return err
	}
	m.statusPath.Store(&path)
	p := status.New(cfg, m.m)
	m.m.Register(status.Name, p)
	m.bundles.mu.Lock()
	m.bundles.plugin = p
	m.bundles.mu.Unlock()
	return nil
}

// bundleStatuses are the bundles' statuses, sent whole to the status
// plugin at every change (OPA's bulk bundle status).
type bundleStatuses struct {
	mu     sync.Mutex
	plugin *status.Plugin // nil: no status section
	byName map[string]*BundleStatus
}

// BundleStatus is the status of the bundle name: what OPA's status plugin
// reports of it (OPA's bundle.Status: active revision, last successful
// request, download and activation, the last error). A nil one records
// nothing.
type BundleStatus struct {
	m         *Manager
	s         bundle.Status // under m.bundles.mu
	activated bool
}

// BundleName is the name of the bundle status of a bundle not configured
// by name (serve --bundle, or the embedded one), the one decisions name
// the active bundle by (decisionlog.BundleName).
const BundleName = "permatrix"

// BundleStatus is the status of the bundle name, made on first use. Until
// the bundle is activated the manager reports the "bundle" plugin not
// ready, as OPA's bundle plugin does.
func (m *Manager) BundleStatus(name string) *BundleStatus {
	if m == nil {
		return nil
	}
	m.bundles.mu.Lock()
	if b := m.bundles.byName[name]; b != nil {
		m.bundles.mu.Unlock()
		return b
	}
	if m.bundles.byName == nil {
		m.bundles.byName = map[string]*BundleStatus{}
	}
	b := &BundleStatus{m: m, s: bundle.Status{Name: name}}
	m.bundles.byName[name] = b
	m.bundles.mu.Unlock()
	m.m.UpdatePluginStatus(bundlePlugin, &plugins.Status{State: plugins.StateNotReady})
	return b
}

// bundlePlugin is the name OPA's bundle plugin reports its state under.
const bundlePlugin = "bundle"

// Requested records a request for the bundle (a download, a read of a
// file) about to be made.
func (b *BundleStatus) Requested() {
	b.update(func(s *bundle.Status) { s.SetRequest() })
}

// NotModified records that the server answered the request with the
// active bundle's ETag (304): a successful request, the bundle current.
func (b *BundleStatus) NotModified() {
	b.update(func(s *bundle.Status) {
		s.LastSuccessfulRequest = s.LastRequest
		s.SetError(nil)
	})
}

// Downloaded records that the request brought a bundle of type typ
// (OPA's "snapshot" or "delta") and size bytes (0 if unknown), which is
// activated next (Activated) or refused (Failed).
func (b *BundleStatus) Downloaded(typ string, size int) {
	b.update(func(s *bundle.Status) {
		s.LastSuccessfulRequest = s.LastRequest
		s.LastSuccessfulDownload = s.LastRequest
		s.Type = typ
		s.SetBundleSize(size)
	})
}

// Activated records the activation of revision at at.
func (b *BundleStatus) Activated(revision string, at time.Time) {
	if b == nil {
		return
	}
	first := false
	b.update(func(s *bundle.Status) {
		s.SetError(nil)
		s.ActiveRevision = revision
		s.LastSuccessfulActivation = at.UTC()
		first, b.activated = !b.activated, true
	})
	if first {
		// Not waited for: the manager hands a plugin's state to the
		// status plugin, which takes it only between reports, and one
		// report may take a connection's timeouts (a control plane that
		// does not answer); an activation (serve's start) would wait.
		go b.m.m.UpdatePluginStatus(bundlePlugin, &plugins.Status{State: plugins.StateOK})
	}
}

// Failed records a failed request, download, verification or activation:
// the active bundle, if any, keeps serving.
func (b *BundleStatus) Failed(err error) {
	b.update(func(s *bundle.Status) { s.SetError(err) })
}

// Status is a copy of the bundle's status.
func (b *BundleStatus) Status() bundle.Status {
	if b == nil {
		return bundle.Status{}
	}
	b.m.bundles.mu.Lock()
	defer b.m.bundles.mu.Unlock()
	return b.s
}

// update changes the status and sends every bundle's to the status
// plugin, if any. The plugin keeps the latest unsent one, so a slow
// control plane never holds a bundle up.
func (b *BundleStatus) update(f func(*bundle.Status)) {
	if b == nil {
		return
	}
	all := &b.m.bundles
	all.mu.Lock()
	f(&b.s)
	p := all.plugin
	var bulk map[string]*bundle.Status
	if p != nil {
		bulk = make(map[string]*bundle.Status, len(all.byName))
		for name, s := range maps.All(all.byName) {
			c := s.s
			bulk[name] = &c
		}
		// Under the lock, so that the plugin gets them in order; it never
		// blocks (a full buffer drops the older).
		p.BulkUpdateBundleStatus(bulk)
	}
	all.mu.Unlock()
}
