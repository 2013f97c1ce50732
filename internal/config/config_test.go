package config_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/permatrix/permatrix/internal/config"
)

// flags are a few of serve's flags, with their types.
func flags() *pflag.FlagSet {
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.String("addr", "127.0.0.1:8181", "")
	f.String("db", "./permatrix.db", "")
	f.Int64("body-limit", 1<<20, "")
	f.Bool("watch", false, "")
	f.Duration("shutdown-timeout", 15*time.Second, "")
	f.StringSlice("decision-log-mask", nil, "")
	f.StringSlice("jwt-algorithms", []string{"RS256"}, "")
	f.String("routes", "", "")
	f.String("tls-cert-file", "", "")
	return f
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	var p *config.Problems
	if !errors.As(err, &p) {
		t.Fatalf("want problems, got %v", err)
	}
	var out []string
	for _, l := range strings.Split(p.Error(), "\n") {
		out = append(out, l)
	}
	return out
}

func TestApplySetsFlagsNotGiven(t *testing.T) {
	f, err := config.Parse("p.yaml", []byte(`
server:
  addr: 0.0.0.0:9000
  body_limit: 2048
  watch: true
  shutdown_timeout: 3s
  decision_log_mask: [/input/a, /input/b]
  tls:
    cert_file: /etc/cert.pem
store:
  db: /var/lib/p.db
identity:
  jwt:
    algorithms:
      - ES256
routes: routes.yaml
`))
	if err != nil {
		t.Fatal(err)
	}
	fs := flags()
	if err := fs.Set("db", "/flag.db"); err != nil { // given: the file must not override it
		t.Fatal(err)
	}
	if err := f.Apply(fs); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"addr": "0.0.0.0:9000", "db": "/flag.db", "body-limit": "2048", "watch": "true", "shutdown-timeout": "3s",
		"decision-log-mask": "[/input/a,/input/b]", "jwt-algorithms": "[ES256]", "routes": "routes.yaml", "tls-cert-file": "/etc/cert.pem",
	} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	if f.OPA != nil || f.Bundles != nil || f.DecisionLogs != nil {
		t.Errorf("OPA sections from none: %s %s %s", f.OPA, f.Bundles, f.DecisionLogs)
	}
}

func TestApplyTypeErrors(t *testing.T) {
	f, err := config.Parse("p.yaml", []byte("server:\n  body_limit: lots\n  watch: perhaps\n  grpc_addr: :9191\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := problems(t, f.Apply(flags()))
	want := []string{
		`p.yaml:2: server.body_limit: invalid argument "lots" for "--body-limit" flag`,
		`p.yaml:3: server.watch: invalid argument "perhaps" for "--watch" flag`,
		`p.yaml:4: server.grpc_addr: not supported by this command (no --grpc-addr)`,
	}
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: %q, want %q…", i, got, w)
		}
	}
}

// TestProblems: each problem once, with its line, all of them.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"syntax", "server:\n  addr: [\n", []string{"p.yaml:2: did not find expected node content"}},
		{"not a mapping", "- a\n- b\n", []string{"p.yaml:1: want a mapping of sections"}},
		{"two documents", "server: {}\n---\nstore: {}\n", []string{"more than one YAML document"}},
		{"unknown section", "servers: {}\n", []string{`p.yaml:1: unknown key "servers"`}},
		{"unknown key", "server:\n  adr: x\n", []string{`p.yaml:2: unknown key "server.adr" (server takes: addr, grpc_addr`}},
		{"duplicate", "server:\n  addr: a\n  addr: b\n", []string{"p.yaml:3: server.addr: given twice (first at line 2)"}},
		{"duplicate section", "store: {}\nstore: {}\n", []string{"p.yaml:2: store: given twice"}},
		{"alias", "a: &x {}\nserver: *x\n", []string{`p.yaml:1: unknown key "a"`, "p.yaml:2: server: YAML aliases and merge keys are not supported"}},
		{"merge key", "server:\n  <<: {addr: x}\n", []string{"p.yaml:2: server.<<: YAML aliases and merge keys are not supported"}},
		{"no value", "server:\n  addr:\n", []string{"p.yaml:2: server.addr: no value"}},
		{"a mapping for a value", "server:\n  addr: {host: x}\n", []string{"p.yaml:2: server.addr: want a single value"}},
		{"a list for a value", "routes: [a, b]\n", []string{"p.yaml:1: routes: want a single value"}},
		{"a section as a value", "server: 3\n", []string{"p.yaml:1: server: want a mapping"}},
		{"comma in a list", "server:\n  decision_log_mask: ['/input/a,/input/b']\n", []string{"without commas"}},
		{"unsupported OPA key", "discovery: {}\nplugins: {}\n", []string{"p.yaml:1: discovery: OPA's discovery is not supported", "p.yaml:2: plugins: OPA's plugins"}},
		{"unknown OPA keys", "services:\n  s:\n    url: http://x\n    credentials:\n      bearer:\n        tokn: t\ndecision_logs:\n  reportng: {}\nbundles:\n  b:\n    service: s\n    signing:\n      kid: k\n",
			[]string{`p.yaml:6: unknown key "services.s.credentials.bearer.tokn"`, `p.yaml:8: unknown key "decision_logs.reportng"`, `p.yaml:13: unknown key "bundles.b.signing.kid"`}},
		{"label types", "labels:\n  region: eu\n  n: 3\n", []string{"p.yaml:3: labels.n: a label is a string"}},
		{"default_decision type", "default_decision: 3\n", []string{"p.yaml:1: default_decision: want a path"}},
		{"OPA value", "services:\n  s:\n    url: http://x\nbundles:\n  b:\n    service: nope\n", []string{`p.yaml:4: invalid configuration for bundle "b": service name "nope" not found`}},
		{"two bundles", "services:\n  s:\n    url: http://x\nbundles:\n  a: {}\n  b: {}\n", []string{"p.yaml:4: bundles: permatrix serves one bundle, 2 configured"}},
		{"status service", "services:\n  s:\n    url: http://x\nstatus:\n  service: nope\n", []string{`p.yaml:4: invalid service name "nope" in status`}},
		{"status key", "status:\n  console: true\n  servce: s\n", []string{`p.yaml:3: unknown key "status.servce"`}},
		{"status nowhere", "status: {}\n", []string{"p.yaml:1: status: sends nowhere: give status.service"}},
		{"status prometheus", "status:\n  console: true\n  prometheus: true\n", []string{"p.yaml:3: status.prometheus: not supported"}},
		{"status manual", "status:\n  console: true\n  trigger: manual\n", []string{`p.yaml:3: status.trigger "manual": permatrix sends its status on every change`}},
		{"status plugin", "status:\n  plugin: mine\n", []string{"p.yaml:2: status.plugin: permatrix has no plugins"}},
		{"status all refused", "status:\n  plugin: mine\n  trigger: manual\n  prometheus: true\n", []string{"p.yaml:2: status.plugin", "p.yaml:3: status.trigger", "p.yaml:4: status.prometheus"}},
		{"status which service", "services:\n  a:\n    url: http://x\n  b:\n    url: http://y\nstatus:\n  partition_name: p\n", []string{"p.yaml:6: status.service: give one of a, b"}},
		{"decision_logs plugin", "decision_logs:\n  plugin: x\n", []string{"p.yaml:1: decision_logs.plugin: permatrix has no decision-log plugins"}},
		{"bundle twice", "services:\n  s:\n    url: http://x\nbundles:\n  b: {}\nserver:\n  bundle: ./x\n  watch: true\n",
			[]string{"p.yaml:7: server.bundle: the bundle comes from the bundles section", "p.yaml:8: server.watch: the bundle comes"}},
		// Two keys of one setting: serve refuses the file ("give one of"),
		// so validate must too.
		{"store twice", "store:\n  url: bolt:./a.db\n  db: ./b.db\n", []string{"p.yaml:3: store.db: give one of store.url and store.db"}},
		{"token twice", "server:\n  admin_token_file: /t\n  admin_token: s\n", []string{"p.yaml:3: server.admin_token: give one of server.admin_token_file and server.admin_token"}},
		// OPA's distributed_tracing: its keys and its parser's messages.
		{"tracing unknown key", "distributed_tracing:\n  type: grpc\n  adress: x:4317\n  resource:\n    service_nam: x\n",
			[]string{`p.yaml:3: unknown key "distributed_tracing.adress"`, `p.yaml:5: unknown key "distributed_tracing.resource.service_nam"`}},
		{"tracing type", "labels: {}\ndistributed_tracing:\n  type: zipkin\n", []string{`p.yaml:2: unknown distributed_tracing.type 'zipkin', must be "grpc", "http" or "" (unset)`}},
		{"tracing sample", "distributed_tracing:\n  type: grpc\n  sample_percentage: 200\n", []string{`p.yaml:1: unsupported distributed_tracing.sample_percentage '200'`}},
		{"tracing encryption", "distributed_tracing:\n  type: http\n  encryption: ssl\n", []string{`p.yaml:1: unsupported distributed_tracing.encryption_scheme 'ssl'`}},
		{"etcd password twice", "store:\n  etcd:\n    password: s\n    password_file: /p\n", []string{"p.yaml:4: store.etcd.password_file: give one of store.etcd.password and store.etcd.password_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("p.yaml", []byte(tc.yaml))
			got := problems(t, err)
			if len(got) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d:\n%s\nwant %q", i, got[i], w)
				}
			}
		})
	}
}

func TestOPASections(t *testing.T) {
	f, err := config.Parse("p.yaml", []byte(`
services:
  bundles:
    url: https://bundles.example.com
    credentials:
      bearer:
        token: secret
  logs:
    url: https://logs.example.com
labels:
  region: eu
keys:
  prod:
    key: shared-secret
    algorithm: HS256
persistence_directory: /var/lib/permatrix
bundles:
  permatrix:
    service: bundles
    resource: bundles/permatrix.tar.gz
    persist: true
    signing:
      keyid: prod
    polling:
      min_delay_seconds: 10
      max_delay_seconds: 20
      long_polling_timeout_seconds: 60
decision_logs:
  service: logs
  mask_decision: /system/log/mask
  reporting:
    min_delay_seconds: 5
    max_delay_seconds: 10
    upload_size_limit_bytes: 65536
status:
  service: logs
  partition_name: fleet-a
  console: true
`))
	if err != nil {
		t.Fatal(err)
	}
	var opa, bundles, logs, status map[string]any
	for raw, into := range map[string]*map[string]any{string(f.OPA): &opa, string(f.Bundles): &bundles, string(f.DecisionLogs): &logs, string(f.Status): &status} {
		if err := json.Unmarshal([]byte(raw), into); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := opa["bundles"]; ok || opa["persistence_directory"] != "/var/lib/permatrix" || opa["labels"].(map[string]any)["region"] != "eu" ||
		opa["services"].(map[string]any)["bundles"].(map[string]any)["credentials"] == nil || opa["keys"] == nil {
		t.Errorf("OPA's manager configuration: %s", f.OPA)
	}
	if bundles["permatrix"].(map[string]any)["polling"].(map[string]any)["min_delay_seconds"] != float64(10) {
		t.Errorf("bundles: %s", f.Bundles)
	}
	if logs["service"] != "logs" {
		t.Errorf("decision_logs: %s", f.DecisionLogs)
	}
	if _, ok := opa["status"]; ok || status["service"] != "logs" || status["partition_name"] != "fleet-a" || status["console"] != true {
		t.Errorf("status: %s (manager: %s)", f.Status, f.OPA)
	}
}

func TestEmptyAndLimits(t *testing.T) {
	for _, empty := range []string{"", "\n", "# nothing\n", "~\n"} {
		f, err := config.Parse("p.yaml", []byte(empty))
		if err != nil || f.Apply(flags()) != nil {
			t.Errorf("%q: %v", empty, err)
		}
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", config.MaxSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("an oversized file: %v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// FuzzParse: no input panics or is accepted with problems unreported.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"server:\n  addr: x\n", "a: &a [*a, *a]\nb: *a\n", "services: {s: {url: 'http://x', credentials: {s3_signing: {}}}}\n",
		"bundles: {b: {polling: {min_delay_seconds: -1}}}\n", "labels: {a: [1]}\n", "? [a]\n: b\n", "server: {tls: {tls: {tls: x}}}\n",
		"decision_logs: {reporting: {buffer_size_limit_bytes: 1e99}}\n", "keys: {k: {key: x, algorithm: nope}}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse("fuzz.yaml", data)
		if err == nil && file == nil {
			t.Fatal("no file and no problem")
		}
		if file != nil {
			_ = file.Apply(flags())
		}
	})
}

// OPA's distributed_tracing section is read (its exclude_paths too, which
// OPA's own key list lacks) and kept for serve.
func TestDistributedTracingKept(t *testing.T) {
	f, err := config.Parse("p.yaml", []byte("distributed_tracing:\n  type: grpc\n  address: collector:4317\n  exclude_paths: [/health**]\n  resource:\n    service_version: v1\n  batch_span_processor_options:\n    max_queue_size: 100\n    max_export_batch_size: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(f.DistributedTracing, &got); err != nil {
		t.Fatal(err)
	}
	if got["type"] != "grpc" || got["address"] != "collector:4317" || f.OPA != nil {
		t.Fatalf("kept %s, OPA %s", f.DistributedTracing, f.OPA)
	}
	if f, err := config.Parse("p.yaml", []byte("labels: {a: b}\n")); err != nil || f.DistributedTracing != nil {
		t.Fatalf("absent: %s %v", f.DistributedTracing, err)
	}
}
