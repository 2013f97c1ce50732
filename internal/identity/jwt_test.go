package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/identity"
)

const (
	issuer   = "https://idp.test/"
	audience = "permatrix"
)

// signer is a private key made in the test, with its public JWK.
type signer struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv any
	pub  jwk.Key
}

func rsaSigner(t *testing.T, kid string) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwa.RS256(), k, &k.PublicKey)
}

func ecSigner(t *testing.T, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwa.ES256(), k, &k.PublicKey)
}

func newSigner(t *testing.T, kid string, alg jwa.SignatureAlgorithm, priv, pub any) signer {
	t.Helper()
	pk, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := pk.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, alg: alg, priv: priv, pub: pk}
}

// jwks is the JSON key set of the signers' public keys.
func jwks(t *testing.T, signers ...signer) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, s := range signers {
		if err := set.AddKey(s.pub); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// claims are a valid token's claims; edit applies changes.
func claims(edit func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": issuer, "aud": audience, "sub": "alice",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"groups": []string{"ops", "dev"},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func (s signer) sign(t *testing.T, c map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range c {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	hdr := jwsHeaders(t, s.kid)
	raw, err := jwt.Sign(tok, jwt.WithKey(s.alg, s.priv, hdr))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newJWTIdentity(t *testing.T, cfg identity.JWTConfig) *identity.Identity {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = audience
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	id, err := identity.New(context.Background(), identity.Config{Mode: "jwt", JWT: cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(id.Close)
	return id
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// refused asserts a 401-class error that mentions want.
func refused(t *testing.T, id *identity.Identity, token, want string) {
	t.Helper()
	c, err := id.Caller(context.Background(), bearer(token))
	if err == nil {
		t.Fatalf("token accepted as %+v; want refused (%s)", c, want)
	}
	if permatrix.ErrorCode(err) != permatrix.EUNAUTHORIZED || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v; want unauthorized mentioning %q", err, want)
	}
}

func TestJWTFromFile(t *testing.T) {
	rs, ec := rsaSigner(t, "rsa-1"), ecSigner(t, "ec-1")
	file := writeFile(t, t.TempDir(), "jwks.json", jwks(t, rs, ec))
	id := newJWTIdentity(t, identity.JWTConfig{JWKS: file, ClockSkew: 30 * time.Second})

	for _, s := range []signer{rs, ec} {
		c, err := id.Caller(context.Background(), bearer(s.sign(t, claims(nil))))
		if err != nil {
			t.Fatalf("%s: %v", s.kid, err)
		}
		if c.Subject != "alice" || strings.Join(c.Groups, ",") != "ops,dev" {
			t.Fatalf("%s: caller %+v", s.kid, c)
		}
	}

	now := time.Now()
	other := rsaSigner(t, "rsa-1") // same kid, another key
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), "invalid token")
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "invalid token")
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["iss"] = "https://evil.test/" })), `"iss"`)
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["aud"] = "another-service" })), `"aud"`)
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { delete(c, "exp") })), "invalid token")
	refused(t, id, other.sign(t, claims(nil)), "none verified")
	refused(t, id, rsaSigner(t, "unknown").sign(t, claims(nil)), `kid "unknown"`)
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { delete(c, "sub") })), `no "sub" claim`)
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["sub"] = "a\x00b" })), `"sub" is not a user id`)
	refused(t, id, rs.sign(t, claims(func(c map[string]any) { c["groups"] = map[string]any{"x": 1} })), `claim "groups"`)

	// Within the skew, a token just expired is still accepted.
	if _, err := id.Caller(context.Background(), bearer(rs.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })))); err != nil {
		t.Fatalf("expired 10 s ago with 30 s skew: %v", err)
	}

	// alg none: a token with no signature at all.
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims(nil))
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
	refused(t, id, none, "invalid token")
	noneKid := enc([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + enc(payload) + "."
	refused(t, id, noneKid, "invalid token")

	// HMAC confusion: HS256 with the RSA public key as the secret.
	der, _ := x509.MarshalPKIXPublicKey(rs.priv.(*rsa.PrivateKey).Public())
	for _, secret := range [][]byte{der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})} {
		hs := newSigner(t, "rsa-1", jwa.HS256(), secret, secret)
		refused(t, id, hs.sign(t, claims(nil)), `algorithm "HS256" is not accepted`)
	}

	// Not a bearer JWT at all.
	refused(t, id, "not-a-jwt", "not a compact JWS")
	if _, err := id.Caller(context.Background(), http.Header{}); err == nil || !strings.Contains(err.Error(), "Bearer") {
		t.Fatalf("no Authorization: %v", err)
	}
	if _, err := id.Caller(context.Background(), http.Header{"Authorization": {"Basic YTpi"}}); err == nil {
		t.Fatal("Basic credentials accepted")
	}
	two := http.Header{"Authorization": {"Bearer " + rs.sign(t, claims(nil)), "Bearer x"}}
	if _, err := id.Caller(context.Background(), two); err == nil || !strings.Contains(err.Error(), "2 times") {
		t.Fatalf("two Authorization headers: %v", err)
	}
}

// With HS256 named in the algorithms, an RSA-only key set still refuses an
// HMAC token signed with the public key: only oct keys verify HMAC.
func TestJWTHMACNeedsSymmetricKeys(t *testing.T) {
	rs := rsaSigner(t, "rsa-1")
	dir := t.TempDir()
	id := newJWTIdentity(t, identity.JWTConfig{JWKS: writeFile(t, dir, "jwks.json", jwks(t, rs)), Algorithms: []string{"RS256", "HS256"}})
	der, _ := x509.MarshalPKIXPublicKey(rs.priv.(*rsa.PrivateKey).Public())
	hs := newSigner(t, "rsa-1", jwa.HS256(), der, der)
	refused(t, id, hs.sign(t, claims(nil)), "no HS256 key")

	// A symmetric key set configured for HS256 works.
	secret := []byte("0123456789abcdef0123456789abcdef")
	sym := newSigner(t, "hs-1", jwa.HS256(), secret, secret)
	set := jwk.NewSet()
	_ = set.AddKey(sym.pub)
	raw, _ := json.Marshal(set)
	id = newJWTIdentity(t, identity.JWTConfig{JWKS: writeFile(t, dir, "sym.json", raw), Algorithms: []string{"HS256"}})
	if c, err := id.Caller(context.Background(), bearer(sym.sign(t, claims(nil)))); err != nil || c.Subject != "alice" {
		t.Fatalf("HS256 with a symmetric key set: %+v %v", c, err)
	}
}

func TestJWTConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "jwks.json", jwks(t, ecSigner(t, "k")))
	for _, tc := range []struct {
		cfg  identity.JWTConfig
		want string
	}{
		{identity.JWTConfig{Issuer: issuer, Audience: audience}, "needs --jwt-jwks"},
		{identity.JWTConfig{JWKS: good, Audience: audience}, "needs --jwt-issuer"},
		{identity.JWTConfig{JWKS: good, Issuer: issuer}, "needs --jwt-audience"},
		{identity.JWTConfig{JWKS: good, Issuer: issuer, Audience: audience, Algorithms: []string{"none"}}, `"none" is not a signature algorithm`},
		{identity.JWTConfig{JWKS: "http://127.0.0.1:1/jwks", Issuer: issuer, Audience: audience}, "must be https"},
		{identity.JWTConfig{JWKS: filepath.Join(dir, "absent.json"), Issuer: issuer, Audience: audience}, "no such file"},
		{identity.JWTConfig{JWKS: writeFile(t, dir, "bad.json", []byte(`{"keys":[{"kty":"RSA"}]}`)), Issuer: issuer, Audience: audience}, "not a JWK set"},
		{identity.JWTConfig{JWKS: writeFile(t, dir, "empty.json", []byte(`{"keys":[]}`)), Issuer: issuer, Audience: audience}, "holds no keys"},
	} {
		_, err := identity.New(context.Background(), identity.Config{Mode: "jwt", JWT: tc.cfg}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// jwksServer serves a key set over HTTPS that the test can swap, counting
// fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

// TestJWTFromHTTPSWithRotation: the key set comes from an HTTPS server; a
// token signed by a key added later (rotation) is accepted once the set is
// refetched for its unknown kid, and refetches are bounded: at most one an
// interval. The interval is measured on the test's clock, which it moves
// on: on a busy machine fifty verifications do not fit in any interval a
// test could sleep through.
func TestJWTFromHTTPSWithRotation(t *testing.T) {
	old, next := rsaSigner(t, "2024"), ecSigner(t, "2025")
	srv := newJWKSServer(t, jwks(t, old))
	const interval = time.Minute
	id := newJWTIdentity(t, identity.JWTConfig{JWKS: srv.URL + "/jwks.json", HTTPClient: srv.Client(), RefreshInterval: interval})
	clock := newTestClock()
	identity.SetKeyClock(id, clock.now)
	if c, err := id.Caller(context.Background(), bearer(old.sign(t, claims(nil)))); err != nil || c.Subject != "alice" {
		t.Fatalf("token of the served key: %+v %v", c, err)
	}
	// The first fetch is startup's only one: another, in the background,
	// would land at any time after — before the rotation or after it.
	startFetches := srv.fetches.Load()
	if startFetches != 1 {
		t.Fatalf("fetches at startup: %d, want 1", startFetches)
	}

	// The IdP rotates: the new key is published, the old one withdrawn.
	// Within the interval after the startup fetch, its kid is unknown.
	srv.set(jwks(t, next))
	refused(t, id, next.sign(t, claims(nil)), `kid "2025"`)
	if n := srv.fetches.Load(); n != startFetches {
		t.Fatalf("fetches within the interval after startup's: %d, want %d", n, startFetches)
	}
	clock.advance(interval)
	if c, err := id.Caller(context.Background(), bearer(next.sign(t, claims(nil)))); err != nil || c.Subject != "alice" {
		t.Fatalf("token of the rotated-in key: %+v %v", c, err)
	}
	if srv.fetches.Load() != startFetches+1 {
		t.Fatalf("fetches after rotation: %d, want %d", srv.fetches.Load(), startFetches+1)
	}
	refused(t, id, old.sign(t, claims(nil)), `kid "2024"`)

	// A flood of unknown kids an interval later refetches once.
	clock.advance(interval)
	before := srv.fetches.Load()
	for i := range 50 {
		refused(t, id, rsaSignerCached(t).withKid("forged-"+string(rune('a'+i%26))).sign(t, claims(nil)), "forged-")
	}
	if n := srv.fetches.Load() - before; n != 1 {
		t.Fatalf("50 unknown kids in one interval caused %d fetches, want 1", n)
	}

	// A server that does not answer with a key set stops startup.
	bad := newJWKSServer(t, []byte(`<html>`))
	_, err := identity.New(context.Background(), identity.Config{Mode: "jwt", JWT: identity.JWTConfig{
		JWKS: bad.URL, HTTPClient: bad.Client(), Issuer: issuer, Audience: audience}}, nil)
	if err == nil || !strings.Contains(err.Error(), "fetching the key set") {
		t.Fatalf("bad JWKS server: %v", err)
	}
	// An https server whose certificate is not trusted stops startup too.
	_, err = identity.New(context.Background(), identity.Config{Mode: "jwt", JWT: identity.JWTConfig{
		JWKS: srv.URL, Issuer: issuer, Audience: audience}}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted JWKS server: %v", err)
	}
}

// testClock is a clock a test moves on (identity.SetKeyClock).
type testClock struct{ unixNano atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.unixNano.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.unixNano.Load()) }
func (c *testClock) advance(d time.Duration) { c.unixNano.Add(int64(d)) }

var (
	cachedOnce sync.Once
	cachedKey  *rsa.PrivateKey
)

// rsaSignerCached reuses one RSA key (making 50 is slow).
func rsaSignerCached(t *testing.T) signer {
	cachedOnce.Do(func() { cachedKey, _ = rsa.GenerateKey(rand.Reader, 2048) })
	return newSigner(t, "cached", jwa.RS256(), cachedKey, &cachedKey.PublicKey)
}

func (s signer) withKid(kid string) signer { s.kid = kid; return s }

// jwsHeaders are protected headers naming kid.
func jwsHeaders(t *testing.T, kid string) jws.WithKeySuboption {
	t.Helper()
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return jws.WithProtectedHeaders(h)
}

// TestJWTCriticalExtensionRefused: a token whose protected header lists an
// extension in "crit" is refused (RFC 7515 section 4.1.11: a recipient that
// does not understand a critical extension must reject the JWS), however
// well it is signed: the issuer said its meaning matters, and permatrix
// understands none.
func TestJWTCriticalExtensionRefused(t *testing.T) {
	rs := rsaSigner(t, "rsa-1")
	id := newJWTIdentity(t, identity.JWTConfig{JWKS: writeFile(t, t.TempDir(), "jwks.json", jwks(t, rs))})
	tok := jwt.New()
	for k, v := range claims(nil) {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	for k, v := range map[string]any{jws.KeyIDKey: "rsa-1", jws.CriticalKey: []string{"urn:example:bound-to"}, "urn:example:bound-to": "device-7"} {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(rs.alg, rs.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	refused(t, id, string(raw), `critical extension "urn:example:bound-to"`)
}
