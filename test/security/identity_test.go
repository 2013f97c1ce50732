package security_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/test/harness"
)

const tm = "celonis-task-mining"

// askEditUsers names edit_users at service scope (a static proxy config).
var askEditUsers = []string{"X-Permatrix-System", tm, "X-Permatrix-Action", "edit_users"}

// serve starts `permatrix serve` with a decision log and returns it.
func serveIdentity(t *testing.T, args ...string) (*harness.Process, string) {
	t.Helper()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "decisions.jsonl")
	args = append([]string{"--db", filepath.Join(dir, "permatrix.db"), "--addr", "127.0.0.1:0", "--admin-token", "op-token", "--decision-log", logFile}, args...)
	p, err := harness.StartProcess(t, bin, "op-token", nil, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	// bob and the group editors may edit users; ann may not.
	for _, a := range []string{
		`{"subject":"user:bob","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`,
		`{"subject":"group:editors","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`,
	} {
		if code, body := p.Do(t, http.MethodPost, "/v1/assignments", a); code != 201 {
			t.Fatalf("assign: %d %s", code, body)
		}
	}
	return p, logFile
}

// send sends a raw request (any method, repeated headers) and returns the
// status, body and decision id.
func send(t *testing.T, base, method, path string, headers ...string) (int, string, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, path)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	_, _ = io.WriteString(c, b.String())
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("X-Permatrix-Decision-Id")
}

// row is one attempt: what is sent, the status it must get, and the
// subject it must be decided as ("" when nothing may be decided).
type row struct {
	name      string
	method    string
	headers   []string
	status    int
	decidedAs string
}

// replay sends each row to forward-auth and returns the decision ids and
// the subjects they must have been decided as.
func replay(t *testing.T, base string, rows []row) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, r := range rows {
		code, body, id := send(t, base, r.method, "/v1/forward-auth", r.headers...)
		if code != r.status {
			t.Errorf("%s: %d %s, want %d", r.name, code, body, r.status)
			continue
		}
		switch {
		case r.decidedAs == "" && id != "":
			t.Errorf("%s: decided (%s) where nothing may be", r.name, id)
		case r.decidedAs != "" && id == "":
			t.Errorf("%s: not decided: %s", r.name, body)
		case r.decidedAs != "":
			want[id] = r.decidedAs
		}
	}
	return want
}

// checkLog stops serve (flushing the decision log) and checks that the
// log holds exactly the expected decisions, each for its subject.
func checkLog(t *testing.T, p *harness.Process, logFile string, want map[string]string) {
	t.Helper()
	p.Stop(t)
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := decisionlog.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("decision log holds %d decisions, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		ch, err := e.Check()
		if err != nil {
			t.Fatal(err)
		}
		if sub := ch.Subject; want[e.DecisionID] != sub {
			t.Errorf("decision %s was made for %v, want %q", e.DecisionID, sub, want[e.DecisionID])
		}
	}
}

// TestForgedSubjectHeaders replays issue 9 items 1 and 4 against the
// default identity (X-Forwarded-User, set by the gateway): a client that
// adds X-Permatrix-Subject, a second X-Forwarded-User or X-Forwarded-Groups
// is still decided as the user the gateway named, or refused; OPTIONS and
// other methods get decisions, not Echo's 204.
func TestForgedSubjectHeaders(t *testing.T) {
	p, logFile := serveIdentity(t, "--grpc-addr", "127.0.0.1:0")
	h := func(kv ...string) []string { return append(append([]string{}, askEditUsers...), kv...) }
	want := replay(t, p.URL, []row{
		{"subject header overrides the gateway's user", "GET", h("X-Forwarded-User", "ann", "X-Permatrix-Subject", "bob"), 403, "ann"},
		{"subject header alone", "GET", h("X-Permatrix-Subject", "bob"), 401, ""},
		{"second X-Forwarded-User appended", "GET", h("X-Forwarded-User", "ann", "X-Forwarded-User", "bob"), 401, ""},
		{"asserted groups header", "GET", h("X-Forwarded-User", "ann", "X-Forwarded-Groups", "editors"), 403, "ann"},
		{"OPTIONS without identity", "OPTIONS", h(), 401, ""},
		{"OPTIONS as ann", "OPTIONS", h("X-Forwarded-User", "ann"), 403, "ann"},
		{"OPTIONS as bob", "OPTIONS", h("X-Forwarded-User", "bob"), 200, "bob"},
		{"TRACE as ann", "TRACE", h("X-Forwarded-User", "ann"), 403, "ann"},
		{"custom method as ann", "BREW", h("X-Forwarded-User", "ann", "X-Permatrix-Subject", "bob"), 403, "ann"},
		{"a user id over 256 bytes", "GET", h("X-Forwarded-User", strings.Repeat("b", 257)), 401, ""},
	})

	// Envoy's gRPC ext_authz: the client's x-permatrix-subject is no identity.
	grpcAddr := ""
	for _, line := range strings.Split(p.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "serving" {
			grpcAddr = strings.TrimPrefix(fmt.Sprint(rec["grpc_url"]), "grpc://")
		}
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ext := map[string]string{"system": tm, "action": "edit_users"}
	for _, r := range []struct {
		name      string
		headers   map[string]string
		code      codes.Code
		decidedAs string
	}{
		{"gRPC subject header overrides", map[string]string{"x-forwarded-user": "ann", "x-permatrix-subject": "bob"}, codes.PermissionDenied, "ann"},
		{"gRPC subject header alone", map[string]string{"x-permatrix-subject": "bob"}, codes.Unauthenticated, ""},
		{"gRPC bob", map[string]string{"x-forwarded-user": "bob"}, codes.OK, "bob"},
	} {
		resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: r.headers}},
			ContextExtensions: ext,
		}})
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != r.code {
			t.Errorf("%s: %v %v", r.name, resp, err)
			continue
		}
		id := ""
		for _, hv := range append(resp.GetOkResponse().GetHeaders(), resp.GetDeniedResponse().GetHeaders()...) {
			if hv.GetHeader().GetKey() == "x-permatrix-decision-id" {
				id = hv.GetHeader().GetValue()
			}
		}
		if (id != "") != (r.decidedAs != "") {
			t.Errorf("%s: decision id %q", r.name, id)
		}
		if id != "" {
			want[id] = r.decidedAs
		}
	}
	checkLog(t, p, logFile, want)
}

// TestForgedJWTs: with --identity jwt, only a token the configured issuer
// signed, for this audience and still valid, is an identity: identity
// headers are ignored, and forged, expired, foreign and alg-confused
// tokens are 401 with nothing decided.
func TestForgedJWTs(t *testing.T) {
	idp, stranger := harness.NewIssuer(t), harness.NewIssuer(t)
	p, logFile := serveIdentity(t, idp.Flags()...)
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": idp.Issuer, "aud": idp.Audience, "sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	none := enc([]byte(`{"alg":"none","kid":"test-key"}`)) + "." + enc(claims) + "."
	// HS256 keyed with the published JWKS: the classic algorithm confusion.
	jwks, _ := os.ReadFile(idp.JWKSFile)
	head := enc([]byte(`{"alg":"HS256","kid":"test-key","typ":"JWT"}`)) + "." + enc(claims)
	mac := hmac.New(sha256.New, jwks)
	mac.Write([]byte(head))
	hs := head + "." + enc(mac.Sum(nil))

	bearer := func(tok string, kv ...string) []string {
		return append(append([]string{"Authorization", "Bearer " + tok}, askEditUsers...), kv...)
	}
	want := replay(t, p.URL, []row{
		{"ann's token with bob's headers", "GET", bearer(idp.Token(t, "ann", nil), "X-Forwarded-User", "bob", "X-Permatrix-Subject", "bob"), 403, "ann"},
		{"ann's token asserting editors", "GET", bearer(idp.Token(t, "ann", func(c map[string]any) { c["groups"] = []string{"editors"} })), 200, "ann"},
		{"bob's headers without a token", "GET", append(append([]string{}, askEditUsers...), "X-Forwarded-User", "bob", "X-Permatrix-Subject", "bob"), 401, ""},
		{"alg none", "GET", bearer(none), 401, ""},
		{"HS256 keyed with the JWKS", "GET", bearer(hs), 401, ""},
		{"signed by another key", "GET", bearer(stranger.Token(t, "bob", nil)), 401, ""},
		{"expired", "GET", bearer(idp.Token(t, "bob", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), 401, ""},
		{"not yet valid", "GET", bearer(idp.Token(t, "bob", func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), 401, ""},
		{"wrong audience", "GET", bearer(idp.Token(t, "bob", func(c map[string]any) { c["aud"] = "another-api" })), 401, ""},
		{"wrong issuer", "GET", bearer(idp.Token(t, "bob", func(c map[string]any) { c["iss"] = "https://evil.test/" })), 401, ""},
		{"OPTIONS with bob's token", "OPTIONS", bearer(idp.Token(t, "bob", nil)), 200, "bob"},
	})

	// Admin API: a user token may not read the store; a forged one is 401;
	// nothing changed.
	_, before := p.Do(t, http.MethodGet, "/v1/export", "")
	for _, r := range []struct {
		name, method, path, token string
		status                    int
	}{
		{"user token reads the export", "GET", "/v1/export", idp.Token(t, "ann", nil), 403},
		{"user token lists assignments", "GET", "/v1/assignments", idp.Token(t, "ann", nil), 403},
		{"alg none on a write", "POST", "/v1/assignments", none, 401},
		{"HS256 confusion on a delete", "DELETE", "/v1/assignments/x", hs, 401},
	} {
		req, _ := http.NewRequest(r.method, p.URL+r.path, strings.NewReader(`{"subject":"user:ann","system":"celonis-task-mining","role":"admin","scope":{"type":"service"}}`))
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.status {
			t.Errorf("%s: %d, want %d", r.name, resp.StatusCode, r.status)
		}
	}
	if _, after := p.Do(t, http.MethodGet, "/v1/export", ""); string(after) != string(before) {
		t.Errorf("the store changed")
	}
	checkLog(t, p, logFile, want)
}

// TestMisconfiguredAccessStopsServe: a routes file that is malformed,
// ambiguous or names what the bundle does not know, and identity or TLS
// flags that do not add up, stop serve with a clear error (file:line for
// routes) instead of serving something looser.
func TestMisconfiguredAccessStopsServe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := write("unknown.yaml", "routes:\n  - path: /a\n    system: celonis-task-mining\n    action: fly\n")
	ambiguous := write("ambiguous.yaml", "routes:\n  - {path: \"/a/{x}\", system: celonis-task-mining, action: edit_users}\n  - {path: \"/{y}/b\", system: celonis-task-mining, action: edit_users}\n")
	typo := write("typo.yaml", "routes:\n  - path: /a\n    system: celonis-task-mining\n    actoin: edit_users\n")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown action", nil, []string{"--routes", unknown}, unknown + `:2: unknown action "fly"`},
		{"ambiguous routes", nil, []string{"--routes", ambiguous}, ambiguous + `:3: pattern "/{y}/b" is ambiguous`},
		{"unknown key", nil, []string{"--routes", typo}, "line 4: field actoin not found"},
		{"jwt without a key set", nil, []string{"--identity", "jwt"}, "needs --jwt-jwks"},
		{"jwt from the environment", []string{"PERMATRIX_IDENTITY=jwt", "PERMATRIX_JWT_JWKS=http://127.0.0.1:1/jwks", "PERMATRIX_JWT_ISSUER=i", "PERMATRIX_JWT_AUDIENCE=a"}, nil, "must be https"},
		{"identity header without a name", nil, []string{"--identity", "header="}, "want header=<header name>"},
		// JWT verification configured but --identity forgotten: the default
		// header identity would trust X-Forwarded-User from anyone.
		{"jwt settings without --identity jwt", []string{"PERMATRIX_JWT_ISSUER=https://idp.example/", "PERMATRIX_JWT_AUDIENCE=permatrix"}, []string{"--addr", "127.0.0.1:0"}, "are for --identity jwt"},
		{"client CA without a certificate", nil, []string{"--tls-client-ca-file", unknown}, "--tls-client-ca-file needs --tls-cert-file"},
		{"relative socket path", nil, []string{"--addr", "unix://permatrix.sock"}, "unix:///absolute/path"},
	} {
		args := append([]string{"--db", filepath.Join(t.TempDir(), "permatrix.db"), "--admin-token", "x"}, tc.args...)
		p, err := harness.StartProcess(t, bin, "x", tc.env, args...)
		if err == nil || !strings.Contains(err.Error(), "serve exited") || !strings.Contains(p.Logs(), tc.want) {
			t.Errorf("%s: %v\n%s", tc.name, err, p.Logs())
		}
	}
}
