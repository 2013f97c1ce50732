package http_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// serve sends one request to h and decodes a JSON object answer.
func serve(t *testing.T, h http.Handler, method, path, body string, admin bool) (int, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("Authorization", "Bearer "+docTestToken)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m, w.Body.String()
}

func TestDecisionPath(t *testing.T) {
	for in, want := range map[string][]string{
		"/permatrix/allow": {"permatrix", "allow"}, "permatrix/allow": {"permatrix", "allow"},
		" /system/main/ ": {"system", "main"}, "x": {"x"},
	} {
		got, err := permhttp.DecisionPath(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("DecisionPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/", "  ", "a//b"} {
		if _, err := permhttp.DecisionPath(bad); err == nil {
			t.Errorf("DecisionPath(%q): no error", bad)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "DefaultDecision") {
			t.Errorf("NewServer with an invalid default decision: %v", r)
		}
	}()
	newTestServer(t, permhttp.Config{AdminToken: docTestToken, DefaultDecision: "a//b"})
}

// POST / answers the configured default decision; one that is not a policy
// entrypoint needs the admin token, as its Data API path does.
func TestDefaultDecisionConfigurable(t *testing.T) {
	check := `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`
	h := newDocTestServer(t).Handler()
	if code, _, raw := serve(t, h, "POST", "/", check, false); code != 200 || strings.TrimSpace(raw) != "false" {
		t.Errorf("default: %d %s", code, raw)
	}
	h = newTestServer(t, permhttp.Config{AdminToken: docTestToken, DefaultDecision: "permatrix/decision"}).Handler()
	if code, m, raw := serve(t, h, "POST", "/", check, false); code != 200 || m["allow"] != false || m["missing"] == nil {
		t.Errorf("permatrix/decision: %d %s", code, raw)
	}
	h = newTestServer(t, permhttp.Config{AdminToken: docTestToken, DefaultDecision: "/systems/blueprism/vendor"}).Handler()
	if code, m, raw := serve(t, h, "POST", "/", "", false); code != 401 || m["code"] != "unauthorized" {
		t.Errorf("not an entrypoint, no token: %d %s", code, raw)
	}
	if code, _, raw := serve(t, h, "POST", "/", "", true); code != 200 || strings.TrimSpace(raw) != `"blueprism"` {
		t.Errorf("not an entrypoint, token: %d %s", code, raw)
	}
	h = newTestServer(t, permhttp.Config{AdminToken: docTestToken, DefaultDecision: "/system/main"}).Handler()
	if code, m, raw := serve(t, h, "POST", "/", "{}", true); code != 404 || m["code"] != "undefined_document" || m["message"] != "document missing: data.system.main" {
		t.Errorf("undefined default decision: %d %s", code, raw)
	}
}

// /v1/config and /v1/status show the configuration given (labels completed
// with an id and the version); /v1/config nothing else.
func TestStatusAndConfig(t *testing.T) {
	h := newTestServer(t, permhttp.Config{AdminToken: docTestToken, Version: "v9.9.9",
		Labels: map[string]string{"region": "eu-1"}, Effective: map[string]any{"permatrix": map[string]any{"addr": "127.0.0.1:8181"}}}).Handler()
	code, m, raw := serve(t, h, "GET", "/v1/config", "", true)
	res, _ := m["result"].(map[string]any)
	labels, _ := res["labels"].(map[string]any)
	if code != 200 || res["default_decision"] != "/permatrix/allow" || labels["region"] != "eu-1" || labels["version"] != "v9.9.9" ||
		len(labels["id"].(string)) != 36 || res["permatrix"].(map[string]any)["addr"] != "127.0.0.1:8181" || strings.Contains(raw, docTestToken) {
		t.Errorf("config: %d %s", code, raw)
	}
	code, m, raw = serve(t, h, "GET", "/v1/status", "", true)
	st, _ := m["result"].(map[string]any)
	if code != 200 || st["labels"].(map[string]any)["id"] != labels["id"] {
		t.Errorf("status: %d %s", code, raw)
	}
	if code, m, _ := serve(t, h, "GET", "/v1/data/permatrix/allow?provenance", "", false); m["provenance"].(map[string]any)["version"] != "v9.9.9" || code != 200 {
		t.Errorf("provenance: %v", m)
	}
}

func TestIsOPAPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/v1/data": true, "/v1/data/x": true, "/v0/data/x/y": true, "/v1/query": true, "/v1/compile": true,
		"/v1/compile/x": true, "/v1/policies/a/b.rego": true, "/v1/status": true, "/v1/config": true,
		"/v1/database": false, "/v1/check": false, "/v1/export": false, "/health": false, "/v1/queryx": false, "": false,
	} {
		if permhttp.IsOPAPath(p) != want {
			t.Errorf("IsOPAPath(%q) != %v", p, want)
		}
	}
}
