package cli_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// controlPlane plays a control plane's status API (OPA's: POST
// /status[/<partition>]) and takes decision logs (POST /logs): it keeps
// every status report, decoded, with the path it came to.
type controlPlane struct {
	mu      sync.Mutex
	reports []statusReport
	logs    int
	// bundleNames are the names logged decisions give their bundles.
	bundleNames map[string]bool
}

type statusReport struct {
	Path    string                  `json:"-"`
	Labels  map[string]string       `json:"labels"`
	Bundles map[string]bundleStatus `json:"bundles"`
	// DecisionLogs is OPA's decision-log plugin's status, once it has
	// uploaded.
	DecisionLogs *struct {
		Code string `json:"code"`
	} `json:"decision_logs"`
	Plugins map[string]*struct {
		State string `json:"state"`
	} `json:"plugins"`
}

type bundleStatus struct {
	Name                     string    `json:"name"`
	ActiveRevision           string    `json:"active_revision"`
	LastSuccessfulActivation time.Time `json:"last_successful_activation"`
	LastSuccessfulDownload   time.Time `json:"last_successful_download"`
	Code                     string    `json:"code"`
	Message                  string    `json:"message"`
	Errors                   []any     `json:"errors"`
}

func (c *controlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/logs":
		var entries []struct {
			Bundles map[string]any `json:"bundles"`
		}
		if zr, err := gzip.NewReader(r.Body); err == nil {
			_ = json.NewDecoder(zr).Decode(&entries)
		}
		c.mu.Lock()
		c.logs++
		if c.bundleNames == nil {
			c.bundleNames = map[string]bool{}
		}
		for _, e := range entries {
			for name := range e.Bundles {
				c.bundleNames[name] = true
			}
		}
		c.mu.Unlock()
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/status"):
		var rep statusReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep.Path = r.URL.Path
		c.mu.Lock()
		c.reports = append(c.reports, rep)
		c.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

// wait waits for a report that ok accepts, and returns it.
func (c *controlPlane) wait(t *testing.T, what string, ok func(statusReport) bool) statusReport {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c.mu.Lock()
		for _, r := range c.reports {
			if ok(r) {
				c.mu.Unlock()
				return r
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no status report: %s (%d reports; last %+v)", what, len(c.reports), c.reports[max(0, len(c.reports)-1):])
	return statusReport{}
}

// withFile is the gzipped bundle tgz with a file added.
func withFile(t *testing.T, tgz []byte, name, content string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestStatusToAControlPlane: with OPA's status section, serve reports to
// the control plane as an OPA does — to /status/<partition_name>, with
// the labels: the revision activated at start, a refused bundle's error
// beside the revision still serving, the next revision; the decision-log
// plugin's uploads; the plugins' states.
func TestStatusToAControlPlane(t *testing.T) {
	dir := t.TempDir()
	cp := &controlPlane{}
	cpSrv := httptest.NewServer(cp)
	t.Cleanup(cpSrv.Close)
	port := harness.ReservePort(t)
	addr := port.Addr
	bs := &bundleServer{hits: map[int]int{}}
	bs.publish(t, "r1")
	bs.up(t, port)
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
services:
  bundles:
    url: http://`+addr+`
  control-plane:
    url: `+cpSrv.URL+`
bundles:
  authz:
    service: bundles
    resource: bundles/permatrix.tar.gz
    polling:
      min_delay_seconds: 1
      max_delay_seconds: 2
labels:
  region: eu
decision_logs:
  service: control-plane
  reporting:
    min_delay_seconds: 1
    max_delay_seconds: 2
status:
  service: control-plane
  partition_name: fleet-a
`)
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_CONFIG="+cfg)
	waitHealth(t, s, "r1")

	r := cp.wait(t, "r1 active", func(r statusReport) bool { return r.Bundles["authz"].ActiveRevision == "r1" })
	b := r.Bundles["authz"]
	if r.Path != "/status/fleet-a" || r.Labels["region"] != "eu" || r.Labels["id"] == "" || r.Labels["version"] == "" {
		t.Errorf("report: %s %v", r.Path, r.Labels)
	}
	if b.Name != "authz" || b.Code != "" || b.LastSuccessfulActivation.IsZero() || b.LastSuccessfulDownload.IsZero() {
		t.Errorf("r1: %+v", b)
	}
	cp.wait(t, "the bundle plugin ready", func(r statusReport) bool {
		return r.Plugins["bundle"] != nil && r.Plugins["bundle"].State == "OK" && r.Plugins["status"] != nil && r.Plugins["status"].State == "OK"
	})
	if code, _ := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`); code != 200 {
		t.Fatalf("check: %d", code)
	}
	cp.wait(t, "a decision-log upload", func(r statusReport) bool { return r.DecisionLogs != nil && r.DecisionLogs.Code == "" })
	// One name everywhere: the decisions, /health?bundles and
	// /v1/status name the bundle as the reports do.
	names := func() map[string]bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return maps.Clone(cp.bundleNames)
	}
	for deadline := time.Now().Add(15 * time.Second); len(names()) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if n := names(); len(n) != 1 || !n["authz"] {
		t.Errorf("logged decisions name their bundle %v, want authz", n)
	}
	if _, body := s.do(t, "GET", "/health?bundles", ""); body["bundles"].(map[string]any)["authz"] == nil {
		t.Errorf("/health?bundles: %v, want the bundle authz", body["bundles"])
	}
	if code, body := s.do(t, "GET", "/v1/status", ""); code != 200 || body["result"].(map[string]any)["bundles"].(map[string]any)["authz"] == nil {
		t.Errorf("/v1/status: %d %v, want the bundle authz", code, body)
	}

	// A bundle that downloads but does not compile: refused, r1 serves,
	// and the control plane is told why.
	bs.mu.Lock()
	broken := withFile(t, bs.body, "/policies/permatrix/broken.rego", "package permatrix.broken\n\nx := no_such_function(1)\n")
	bs.body, bs.etag = broken, `"broken"`
	bs.mu.Unlock()
	r = cp.wait(t, "the refusal", func(r statusReport) bool { return r.Bundles["authz"].Code != "" })
	b = r.Bundles["authz"]
	if b.Code != "bundle_error" || b.ActiveRevision != "r1" || !strings.Contains(b.Message+stringOf(b.Errors), "no_such_function") {
		t.Errorf("refused: %+v", b)
	}
	if _, rev := health(t, s); rev != "r1" {
		t.Errorf("serving %q after the refusal", rev)
	}

	bs.publish(t, "r2")
	waitHealth(t, s, "r2")
	r = cp.wait(t, "r2 active", func(r statusReport) bool { return r.Bundles["authz"].ActiveRevision == "r2" })
	if b := r.Bundles["authz"]; b.Code != "" || b.Message != "" {
		t.Errorf("r2: the error kept: %+v", b)
	}
	s.Stop(t)
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestStatusOfALocalBundle: serve's own bundle (here the embedded one) is
// reported under the name decisions give it, with its revision; without
// partition_name to /status, and status.console logs each report.
func TestStatusOfALocalBundle(t *testing.T) {
	dir := t.TempDir()
	cp := &controlPlane{}
	cpSrv := httptest.NewServer(cp)
	t.Cleanup(cpSrv.Close)
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
services:
  control-plane:
    url: `+cpSrv.URL+`
status:
  console: true
  service: control-plane
server:
  decision_log: `+filepath.Join(dir, "decisions.jsonl")+`
`)
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_CONFIG="+cfg)
	_, rev := health(t, s)
	if rev == "" {
		t.Fatalf("no revision in /health?bundles\n%s", s.Logs())
	}
	r := cp.wait(t, "the embedded bundle active", func(r statusReport) bool { return r.Bundles["permatrix"].ActiveRevision == rev })
	if r.Path != "/status" { // OPA's client drops the final slash
		t.Errorf("report to %s", r.Path)
	}
	// Every plugin ready (the decision log's file too), as a healthy
	// OPA reports them.
	r = cp.wait(t, "every plugin ready", func(r statusReport) bool {
		for _, p := range r.Plugins {
			if p == nil || p.State != "OK" {
				return false
			}
		}
		return r.Plugins["bundle"] != nil && r.Plugins["decision_logs"] != nil
	})
	s.Stop(t)
	if logs := s.Logs(); !strings.Contains(logs, `"msg":"Status Log"`) || !strings.Contains(logs, `"active_revision":"`+rev+`"`) {
		t.Errorf("status.console: no status in the log\n%s", logs)
	}
	// SIGTERM stops the reports only once the plugins have stopped: the
	// control plane is told of the decision log's stop, and no report
	// failed.
	cp.wait(t, "the decision log stopped", func(r statusReport) bool {
		return r.Plugins["decision_logs"] != nil && r.Plugins["decision_logs"].State == "NOT_READY"
	})
	if logs := s.Logs(); strings.Contains(logs, "status update failed") {
		t.Errorf("a report failed at shutdown\n%s", logs)
	}

	// A bundle that stops serve at startup: the control plane is told why.
	tree := copyTree(t)
	writeConfig(t, filepath.Join(tree, "policies", "permatrix", "broken.rego"), "package permatrix.broken\n\nx := no_such_function(1)\n")
	out, code := run(t, "serve", "--config", cfg, "--bundle", tree, "--db", filepath.Join(dir, "p2.db"), "--addr", "127.0.0.1:0", "--admin-token", token)
	if code == 0 {
		t.Fatalf("serve with a broken bundle: exit 0\n%s", out)
	}
	r = cp.wait(t, "the startup failure", func(r statusReport) bool { return r.Bundles["permatrix"].Code == "bundle_error" })
	if b := r.Bundles["permatrix"]; b.ActiveRevision != "" || !strings.Contains(b.Message+stringOf(b.Errors), "no_such_function") {
		t.Errorf("startup failure: %+v", b)
	}
}

// TestStatusOfAWatchedBundle: serve --bundle DIR --watch reports each
// reload: a broken edit's error beside the revision still serving, then
// a good edit's revision.
func TestStatusOfAWatchedBundle(t *testing.T) {
	dir := t.TempDir()
	tree := copyTree(t)
	cp := &controlPlane{}
	cpSrv := httptest.NewServer(cp)
	t.Cleanup(cpSrv.Close)
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
services:
  control-plane:
    url: `+cpSrv.URL+`
status:
  service: control-plane
  partition_name: edge
server:
  bundle: `+tree+`
  watch: true
  watch_debounce: 100ms
`)
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_CONFIG="+cfg)
	_, first := health(t, s)
	cp.wait(t, "the first revision", func(r statusReport) bool {
		return r.Path == "/status/edge" && r.Bundles["permatrix"].ActiveRevision == first && first != ""
	})

	extra := filepath.Join(tree, "policies", "permatrix", "extra.rego")
	writeConfig(t, extra, "package permatrix.extra\n\nx := no_such_function(1)\n")
	r := cp.wait(t, "the broken edit", func(r statusReport) bool { return r.Bundles["permatrix"].Code != "" })
	if b := r.Bundles["permatrix"]; b.Code != "bundle_error" || b.ActiveRevision != first || !strings.Contains(b.Message+stringOf(b.Errors), "no_such_function") {
		t.Errorf("broken edit: %+v", b)
	}

	writeConfig(t, extra, "package permatrix.extra\n\nx := 1\n")
	r = cp.wait(t, "the good edit", func(r statusReport) bool {
		b := r.Bundles["permatrix"]
		return b.ActiveRevision != first && b.ActiveRevision != ""
	})
	if b := r.Bundles["permatrix"]; b.Code != "" {
		t.Errorf("good edit: the error kept: %+v", b)
	}
	if _, rev := health(t, s); rev != r.Bundles["permatrix"].ActiveRevision {
		t.Errorf("serving %q, reported %q", rev, r.Bundles["permatrix"].ActiveRevision)
	}
	s.Stop(t)
}

// copyTree is a copy of the repository's bundle layout (policies/,
// systems/) to edit.
func copyTree(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	for _, sub := range []string{"policies", "systems"} {
		if err := os.CopyFS(filepath.Join(tree, sub), os.DirFS(filepath.Join(harness.Root(), sub))); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// TestStatusControlPlaneNotAnswering: a control plane that takes status
// reports and never answers (its service waits for headers for ten
// minutes) holds up neither serve's start nor its decisions, nor its
// shutdown past --shutdown-timeout (the harness allows 20 s), though
// OPA's decision-log plugin, uploading to it too, waits on the status
// plugin for each upload's outcome.
func TestStatusControlPlaneNotAnswering(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logs" {
			_, _ = io.Copy(io.Discard, r.Body)
			return
		}
		select { // a status report: no answer
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	defer close(release)
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
services:
  control-plane:
    url: `+srv.URL+`
    response_header_timeout_seconds: 600
decision_logs:
  service: control-plane
  reporting:
    min_delay_seconds: 1
    max_delay_seconds: 1
status:
  service: control-plane
server:
  shutdown_timeout: 1s
`)
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_CONFIG="+cfg)
	if code, _ := health(t, s); code != 200 {
		t.Fatalf("not ready: %d\n%s", code, s.Logs())
	}
	for range 3 {
		if code, _ := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`); code != 200 {
			t.Fatalf("check: %d", code)
		}
		time.Sleep(time.Second) // an upload's turn: the decision-log plugin then waits on the status plugin
	}
	s.Stop(t)
}

// TestConfigShowsStatusAndTracing: GET /v1/config shows OPA's status and
// distributed_tracing sections as configured, as OPA's does (they were
// left out); a TLS key is shown by its file's path, as configured.
func TestConfigShowsStatusAndTracing(t *testing.T) {
	dir := t.TempDir()
	cpSrv := httptest.NewServer(&controlPlane{})
	t.Cleanup(cpSrv.Close)
	cfg := filepath.Join(dir, "permatrix.yaml")
	certs := harness.NewCerts(t)
	writeConfig(t, cfg, `
services:
  control-plane:
    url: `+cpSrv.URL+`
status:
  service: control-plane
  partition_name: fleet-a
distributed_tracing:
  type: grpc
  address: 127.0.0.1:1
  service_name: sidecar
  encryption: mtls
  tls_cert_file: `+certs.ClientCert+`
  tls_private_key_file: `+certs.ClientKey+`
`)
	s := serve(t, filepath.Join(dir, "p.db"), "PERMATRIX_CONFIG="+cfg)
	code, raw := s.Do(t, "GET", "/v1/config", "")
	var body struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(raw, &body); code != 200 || err != nil {
		t.Fatalf("/v1/config: %d %v %s", code, err, raw)
	}
	st, _ := body.Result["status"].(map[string]any)
	if st["service"] != "control-plane" || st["partition_name"] != "fleet-a" {
		t.Errorf("/v1/config status: %v", st)
	}
	dt, _ := body.Result["distributed_tracing"].(map[string]any)
	if dt["type"] != "grpc" || dt["service_name"] != "sidecar" || dt["tls_private_key_file"] != certs.ClientKey {
		t.Errorf("/v1/config distributed_tracing: %v", dt)
	}
	s.Stop(t)
}
