package management_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/test/harness"
)

// controlPlane is a status API server: it keeps every status POSTed, by
// path, decoded.
type controlPlane struct {
	mu    sync.Mutex
	posts []statusPost
}

type statusPost struct {
	path string
	body statusReport
}

// statusReport is the part of OPA's status report the tests read, by its
// JSON names.
type statusReport struct {
	Labels  map[string]string `json:"labels"`
	Bundles map[string]struct {
		Name                     string    `json:"name"`
		ActiveRevision           string    `json:"active_revision"`
		LastSuccessfulActivation time.Time `json:"last_successful_activation"`
		LastSuccessfulDownload   time.Time `json:"last_successful_download"`
		LastRequest              time.Time `json:"last_request"`
		Type                     string    `json:"type"`
		Size                     int       `json:"size"`
		Code                     string    `json:"code"`
		Message                  string    `json:"message"`
	} `json:"bundles"`
	DecisionLogs *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"decision_logs"`
	Plugins map[string]struct {
		State string `json:"state"`
	} `json:"plugins"`
}

func (c *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/status") {
		http.NotFound(w, r)
		return
	}
	var body statusReport
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.posts = append(c.posts, statusPost{r.URL.Path, body})
	c.mu.Unlock()
}

// waitPost waits for a status POSTed to path that ok accepts.
func (c *controlPlane) waitPost(t *testing.T, path string, ok func(statusReport) bool) statusReport {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		for _, p := range c.posts {
			if p.path == path && ok(p.body) {
				c.mu.Unlock()
				return p.body
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no such status POSTed to %s; got %+v", path, c.posts)
	return statusReport{}
}

// TestStatusReportsBundleAndPlugins: OPA's status plugin on the manager
// POSTs to /status/<partition_name> the labels, the bundle's status as
// it changes (activated, then failed with the active revision kept) and
// the plugins' states (the bundle's ready once activated).
func TestStatusReportsBundleAndPlugins(t *testing.T) {
	cp := &controlPlane{}
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	m := newManager(t, `{"services": {"cp": {"url": "`+srv.URL+`"}}, "labels": {"region": "eu"}}`, nil)
	if err := m.EnableStatus([]byte(`{"service": "cp", "partition_name": "fleet-a"}`)); err != nil {
		t.Fatal(err)
	}
	b := m.BundleStatus(management.BundleName)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := cp.waitPost(t, "/status/fleet-a", func(r statusReport) bool { return r.Plugins["status"].State == "OK" })
	if got.Labels["region"] != "eu" || got.Labels["id"] == "" || got.Plugins["bundle"].State != "NOT_READY" {
		t.Errorf("first status: %+v", got)
	}

	before := time.Now().UTC()
	b.Requested()
	b.Downloaded("snapshot", 1234)
	b.Activated("r1", time.Now())
	got = cp.waitPost(t, "/status/fleet-a", func(r statusReport) bool { return r.Bundles["permatrix"].ActiveRevision == "r1" })
	bs := got.Bundles["permatrix"]
	if bs.Name != "permatrix" || bs.Code != "" || bs.Type != "snapshot" || bs.Size != 1234 || bs.LastSuccessfulActivation.Before(before) || bs.LastSuccessfulDownload.Before(before) {
		t.Errorf("activated: %+v", bs)
	}
	cp.waitPost(t, "/status/fleet-a", func(r statusReport) bool { return r.Plugins["bundle"].State == "OK" })

	b.Requested()
	b.Failed(errors.New("policies/x.rego:3: rego_parse_error"))
	got = cp.waitPost(t, "/status/fleet-a", func(r statusReport) bool { return r.Bundles["permatrix"].Code != "" })
	if bs := got.Bundles["permatrix"]; bs.Code != "bundle_error" || !strings.Contains(bs.Message, "rego_parse_error") || bs.ActiveRevision != "r1" {
		t.Errorf("failed: %+v", bs)
	}
	if s := b.Status(); s.ActiveRevision != "r1" || s.Code != "bundle_error" {
		t.Errorf("Status(): %+v", s)
	}
}

// TestStatusConsole: status: {console: true} logs each status in serve's
// log (OPA's "Status Log" line), with no service.
func TestStatusConsole(t *testing.T) {
	var out harness.LockedBuffer
	m := newManager(t, `{"labels": {"team": "iam"}}`, slog.New(slog.NewJSONHandler(&out, nil)))
	if err := m.EnableStatus([]byte(`{"console": true}`)); err != nil {
		t.Fatal(err)
	}
	m.BundleStatus(management.BundleName).Activated("c1", time.Now())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := out.String()
		if strings.Contains(s, `"msg":"Status Log"`) && strings.Contains(s, `"active_revision":"c1"`) && strings.Contains(s, `"team":"iam"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status in the log:\n%s", s)
		}
	}
}

// TestStatusConfigRefused: what permatrix would otherwise ignore is an
// error that names the key.
func TestStatusConfigRefused(t *testing.T) {
	two := []string{"a", "b"}
	for _, tc := range []struct {
		config   string
		services []string
		want     string
	}{
		{`{"service": "nope"}`, two, `invalid service name "nope" in status`},
		{`{"service": "a", "plugin": "mine"}`, two, "status.plugin"},
		{`{"service": "a", "trigger": "manual"}`, two, `status.trigger "manual"`},
		{`{"service": "a", "trigger": "immediate"}`, two, `status.trigger "immediate"`},
		{`{"service": "a", "trigger": "sometimes"}`, two, "sometimes"},
		{`{"service": "a", "prometheus": true}`, two, "status.prometheus"},
		{`{"service": "a", "prometheus_config": {}}`, two, "status.prometheus_config"},
		{`{}`, two, "status.service: give one of a, b"},
		{`{}`, nil, "status: sends nowhere"},
		{`{"console": false}`, nil, "status: sends nowhere"},
		{`{"service": 5}`, two, "status"},
		// The report would go to /status/eu with a query, or a fragment.
		{`{"service": "a", "partition_name": "eu?x=1"}`, two, `status.partition_name "eu?x=1": not a path`},
		{`{"service": "a", "partition_name": "eu#x"}`, two, `status.partition_name "eu#x": not a path`},
		{`{"service": "a", "partition_name": "eu%zz"}`, two, `status.partition_name "eu%zz": not a path`},
	} {
		_, err := management.ParseStatusConfig([]byte(tc.config), tc.services)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.config, err, tc.want)
		}
	}
	for _, tc := range []struct {
		config, service string
		services        []string
	}{
		{`{}`, "a", []string{"a"}}, // OPA's default: the one service
		{`{"service": "b", "trigger": "periodic", "prometheus": false}`, "b", two},
		{`{"console": true}`, "", two},
	} {
		cfg, err := management.ParseStatusConfig([]byte(tc.config), tc.services)
		if err != nil || cfg.Service != tc.service {
			t.Errorf("%s: %+v %v, want service %q", tc.config, cfg, err, tc.service)
		}
	}
}

// TestStatusSlowControlPlane: a control plane that does not answer holds
// up no bundle: every change returns while a report hangs, and once the
// control plane answers it gets the latest status (the older ones unsent
// are dropped, not queued).
func TestStatusSlowControlPlane(t *testing.T) {
	cp := &controlPlane{}
	release := make(chan struct{})
	var hung sync.Once
	hanging := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Do(func() { close(hanging) })
		<-release
		cp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	defer free() // before srv.Close, which waits for the hung request
	m := newManager(t, `{"services": {"cp": {"url": "`+srv.URL+`"}}}`, nil)
	if err := m.EnableStatus([]byte(`{"service": "cp"}`)); err != nil {
		t.Fatal(err)
	}
	b := m.BundleStatus(management.BundleName)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-hanging // the first report is in flight, and stays there
	for i := range 100 {
		b.Requested()
		b.Downloaded("snapshot", i)
		b.Activated(fmt.Sprintf("r%d", i), time.Now())
		b.Failed(errors.New("refused"))
	}
	b.Activated("last", time.Now())
	free()
	cp.waitPost(t, "/status", func(r statusReport) bool { return r.Bundles["permatrix"].ActiveRevision == "last" })
}

// TestStatusRedirectToAnEndlessAnswer: a control plane that answers a
// report with a redirect (303: the client follows it with a GET) to a body
// that does not end held the status plugin for good — OPA drains an
// answer's body before its next report, and the answers bounded to
// errorBodyMax were those of other methods, a redirected GET taken for a
// bundle download (unbounded without a bundles section, read into memory
// up to its size limit with one) — and with it the decision-log uploads,
// which hand the plugin their outcome. The answer is read as any answer
// but a bundle's: a bounded head of it, and the next report is sent.
func TestStatusRedirectToAnEndlessAnswer(t *testing.T) {
	cp := &controlPlane{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/elsewhere" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(make([]byte, 1<<20))
			w.(http.Flusher).Flush()
			select { // and never ends
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		cp.ServeHTTP(w, r)
		http.Redirect(w, r, "/elsewhere", http.StatusSeeOther)
	}))
	t.Cleanup(srv.Close)
	defer close(release) // before srv.Close, which waits for the endless answer
	m := newManager(t, `{"services": {"cp": {"url": "`+srv.URL+`"}}}`, nil)
	if err := m.EnableStatus([]byte(`{"service": "cp"}`)); err != nil {
		t.Fatal(err)
	}
	b := m.BundleStatus(management.BundleName)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp.waitPost(t, "/status", func(statusReport) bool { return true })
	b.Activated("r1", time.Now())
	cp.waitPost(t, "/status", func(r statusReport) bool { return r.Bundles["permatrix"].ActiveRevision == "r1" })
}

// TestStatusConsoleRedactsNestedURLs: the status report logged with
// status: {console: true} carries each bundle's and the decision-log
// upload's last error, nested in the line's fields: a presigned URL's
// signature or a token in a URL named there is shown redacted, as
// everywhere in serve's log, and the error's other text kept.
func TestStatusConsoleRedactsNestedURLs(t *testing.T) {
	var out harness.LockedBuffer
	m := newManager(t, `{}`, slog.New(slog.NewJSONHandler(&out, nil)))
	if err := m.EnableStatus([]byte(`{"console": true}`)); err != nil {
		t.Fatal(err)
	}
	b := m.BundleStatus(management.BundleName)
	b.Activated("c1", time.Now())
	b.Failed(errors.New(`Get "https://bundles.example/b.tar.gz?sig=SECRETSIG&x=1": dial tcp: refused`))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == ""; time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, `"msg":"Status Log"`) && strings.Contains(l, "bundles.example") {
				line = l
			}
		}
		if line == "" && time.Now().After(deadline) {
			t.Fatalf("no status with the bundle's error in the log:\n%s", out.String())
		}
	}
	if strings.Contains(line, "SECRETSIG") {
		t.Errorf("the bundle's URL's signature is in the log: %s", line)
	}
	if !strings.Contains(line, `https://bundles.example/b.tar.gz?redacted`) || !strings.Contains(line, "dial tcp: refused") {
		t.Errorf("the bundle's error is not shown redacted: %s", line)
	}
}
