package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/identity"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// TestAdminCallerUser: with --identity jwt, a user's verified JWT passes
// the admin middleware of the write routes and puts the user id under
// "permatrix.caller.user" (the write handlers make it the actor); the
// reads need the admin token; anything else is 401.
func TestAdminCallerUser(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.Import(&key.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	raw, _ := json.Marshal(set)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	sign := func(sub string, exp time.Time) string {
		tok := jwt.New()
		_ = tok.Set("iss", "https://idp.test/")
		_ = tok.Set("aud", "permatrix")
		_ = tok.Set("sub", sub)
		_ = tok.Set("exp", exp.Unix())
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "k1")
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	id, err := identity.New(context.Background(), identity.Config{Mode: "jwt", JWT: identity.JWTConfig{
		JWKS: jwks, Issuer: "https://idp.test/", Audience: "permatrix"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()

	svc, log := activeService(t)
	const token = "operator-token"
	s := NewServer(svc, Config{AdminToken: token, Logger: log, Identity: id})
	caller := func(c echo.Context) error { return c.String(http.StatusOK, fmt.Sprint(c.Get(callerUserKey))) }
	s.echo.POST("/test/write", caller, s.requireAdmin(true))
	s.echo.GET("/test/read", caller, s.requireAdmin(false))

	do := func(method, path, bearer string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(""))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	alice := sign("alice", time.Now().Add(time.Hour))
	for _, tc := range []struct {
		method, path, bearer string
		status               int
		body                 string
	}{
		{"POST", "/test/write", token, 200, "<nil>"},
		{"POST", "/test/write", alice, 200, "alice"},
		{"GET", "/test/read", token, 200, "<nil>"},
		{"GET", "/test/read", alice, 403, "needs the admin token"},
		{"POST", "/test/write", sign("alice", time.Now().Add(-time.Hour)), 401, "not a valid user token"},
		{"POST", "/test/write", "garbage", 401, "not a valid user token"},
		{"POST", "/test/write", "", 401, "admin token"},
		// The real routes: store-wide reads are the operator's.
		{"GET", "/v1/assignments", alice, 403, "needs the admin token"},
		{"GET", "/v1/assignments/x", alice, 403, "needs the admin token"},
		{"GET", "/v1/export", alice, 403, "needs the admin token"},
		{"GET", "/v1/backup", alice, 403, "needs the admin token"},
		{"GET", "/v1/groups/g/members", alice, 403, "needs the admin token"},
		{"GET", "/v1/systems/blueprism/roles/r", alice, 403, "needs the admin token"},
		{"GET", "/v1/systems/celonis-task-mining/projects/p", alice, 403, "needs the admin token"},
		{"GET", "/v1/assignments", token, 200, "assignments"},
		// OPA's APIs beyond the entrypoints are the operator's too (OPA's
		// envelope); a user's JWT reads only the entrypoints, as anyone.
		{"GET", "/v1/query?q=x%3A%3D1", alice, 403, `"code": "forbidden"`},
		{"POST", "/v1/compile", alice, 403, "needs the admin token"},
		{"GET", "/v1/policies", alice, 403, "needs the admin token"},
		{"GET", "/v1/policies/policies/permatrix/permatrix.rego", alice, 403, "needs the admin token"},
		{"GET", "/v1/status", alice, 403, "needs the admin token"},
		{"GET", "/v1/config", alice, 403, "needs the admin token"},
		{"GET", "/v1/data/store", alice, 401, `"code": "unauthorized"`},
		{"POST", "/v0/data/store", alice, 401, `"code": "unauthorized"`},
		{"GET", "/v1/data/permatrix/allow?explain=full", alice, 401, "explain=full"},
		{"GET", "/v1/data/permatrix/allow", alice, 200, `"result":false`},
		{"GET", "/v1/query?q=x%3A%3D1", token, 200, `"x":1`},
	} {
		code, body := do(tc.method, tc.path, tc.bearer)
		if code != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.status, tc.body)
		}
	}

	// Without --identity jwt a JWT is just a wrong admin token.
	h := NewServer(svc, Config{AdminToken: token, Logger: log})
	h.echo.POST("/test/write", caller, h.requireAdmin(true))
	req := httptest.NewRequest("POST", "/test/write", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	w := httptest.NewRecorder()
	h.Handler().ServeHTTP(w, req)
	if w.Code != 401 {
		t.Fatalf("JWT without --identity jwt: %d %s", w.Code, w.Body)
	}
}

// TestAdminTokenScheme: the admin token is read from the Authorization
// header as a user's token is (identity.BearerToken): the scheme in any
// case (RFC 7235: "bearer secret" is the same credential), and one header
// only — a second Authorization header (a gateway appending the client's)
// is refused, not read from its first value.
func TestAdminTokenScheme(t *testing.T) {
	svc, log := activeService(t)
	s := NewServer(svc, Config{AdminToken: "secret", Logger: log})
	for _, tc := range []struct {
		headers []string
		status  int
	}{
		{[]string{"Bearer secret"}, 200},
		{[]string{"bearer secret"}, 200},
		{[]string{"BEARER secret"}, 200},
		{[]string{"Basic secret"}, 401},
		{[]string{"Bearer secret", "Bearer secret"}, 401},
		{[]string{"Bearer secret", "Bearer other"}, 401},
		{[]string{"Bearer other"}, 401},
	} {
		for _, path := range []string{"/v1/assignments", "/v1/data/store"} {
			req := httptest.NewRequest("GET", path, nil)
			for _, h := range tc.headers {
				req.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Errorf("GET %s with Authorization %q: %d %s, want %d", path, tc.headers, w.Code, w.Body, tc.status)
			}
		}
	}
}

// activeService is a service over a new bbolt file with the default
// bundle active, and a logger that discards.
func activeService(t *testing.T) (*pdp.Service, *slog.Logger) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "permatrix.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := pdp.New(db, opa.NewEngine(db), log, nil)
	b, err := opa.ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return svc, log
}
