package main

import (
	"encoding/json"
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
