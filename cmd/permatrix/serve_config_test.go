package main

import (
	"encoding/json"
	"github.com/permatrix/permatrix/internal/config"
	"strings"
	"testing"
)

// /v1/config shows every serve flag's effective value, never a secret.
func TestEffectiveConfigHidesSecrets(t *testing.T) {
	cmd := newServe()
	f := cmd.Flags()
	for name, v := range map[string]string{
		"admin-token": "s3cret-token", "etcd-password": "s3cret-pw", "etcd-password-file": "/run/s3cret-pw-file",
		"admin-token-file": "/run/s3cret-token-file", "verification-key": "s3cret-hmac",
		"bundle": "https://user:s3cret-basic@bundles.example/b.tar.gz?token=s3cret-query", "jwt-jwks": "https://idp.example/jwks.json",
		"body-limit": "2048", "watch": "true", "jwt-algorithms": "RS256,ES256", "default-decision": "/permatrix/decision",
	} {
		if err := f.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(effectiveConfig(f, nil))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Fatalf("a secret is shown: %s", raw)
	}
	var got struct{ Permatrix map[string]any }
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	p := got.Permatrix
	if p["bundle"] != "https://xxxxx@bundles.example/b.tar.gz?redacted" || p["jwt-jwks"] != "https://idp.example/jwks.json" ||
		p["body-limit"] != float64(2048) || p["watch"] != true || len(p["jwt-algorithms"].([]any)) != 2 ||
		p["default-decision"] != "/permatrix/decision" || p["help"] != nil || p["verification-key-id"] != "default" {
		t.Fatalf("config: %s", raw)
	}
}

// /v1/config shows OPA's sections of the file as OPA's does — services
// without credentials, keys without key material — and more strictly: a
// service's header values left out, every URL (at any depth, in a list of
// services too) without its password and query string.
func TestEffectiveConfigShowsOPASectionsWithoutSecrets(t *testing.T) {
	for _, services := range []string{`
services:
  bundles:
    url: https://user:s3cret-basic@bundles.example.com/b?sig=s3cret-sig
    headers: {Authorization: Bearer s3cret-header, X-Plain: shown-name}
    credentials:
      bearer:
        token: s3cret-token
  logs:
    url: https://logs.example.com
`, `
services:
  - name: bundles
    url: https://user:s3cret-basic@bundles.example.com/b?sig=s3cret-sig
    headers: {Authorization: Bearer s3cret-header, X-Plain: shown-name}
    credentials:
      bearer:
        token: s3cret-token
  - name: logs
    url: https://logs.example.com
`} {
		file, err := config.Parse("p.yaml", []byte(services+`
keys:
  prod:
    key: s3cret-hmac
    algorithm: HS256
  rsa:
    private_key: s3cret-private
    algorithm: RS256
persistence_directory: /var/lib/permatrix
bundles:
  permatrix:
    service: bundles
    resource: bundles/permatrix.tar.gz?token=s3cret-resource
    signing:
      keyid: prod
decision_logs:
  service: logs
  reporting: {min_delay_seconds: 5, max_delay_seconds: 10}
status:
  service: logs
`))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(effectiveConfig(newServe().Flags(), file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "s3cret") || strings.Contains(string(raw), "credentials") {
			t.Fatalf("a secret is shown: %s", raw)
		}
		var got struct {
			Services           any
			Keys               map[string]map[string]any
			Bundles            map[string]map[string]any
			DecisionLogs       map[string]any `json:"decision_logs"`
			Status             map[string]any
			PersistenceDir     string `json:"persistence_directory"`
			DistributedTracing any    `json:"distributed_tracing"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		var bundleService map[string]any
		switch s := got.Services.(type) {
		case map[string]any:
			bundleService, _ = s["bundles"].(map[string]any)
		case []any:
			bundleService, _ = s[0].(map[string]any)
		}
		headers, _ := bundleService["headers"].(map[string]any)
		if bundleService["url"] != "https://xxxxx@bundles.example.com/b?redacted" || headers["X-Plain"] != "redacted" || len(headers) != 2 {
			t.Errorf("service: %v", bundleService)
		}
		if got.Keys["prod"]["algorithm"] != "HS256" || len(got.Keys["prod"]) != 1 || got.Keys["rsa"]["algorithm"] != "RS256" || len(got.Keys["rsa"]) != 1 {
			t.Errorf("keys: %v", got.Keys)
		}
		if got.Bundles["permatrix"]["service"] != "bundles" || got.Bundles["permatrix"]["resource"] != "bundles/permatrix.tar.gz?redacted" {
			t.Errorf("bundles: %v", got.Bundles)
		}
		if got.DecisionLogs["service"] != "logs" || got.Status["service"] != "logs" || got.PersistenceDir != "/var/lib/permatrix" || got.DistributedTracing != nil {
			t.Errorf("sections: %s", raw)
		}
	}
}
