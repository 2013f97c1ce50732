package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/permatrix/permatrix/internal/identity"
)

// Issuer is a test identity provider: an ES256 key made in the test, its
// public JWKS in a file, and tokens it signs.
type Issuer struct {
	JWKSFile string
	Issuer   string
	Audience string
	key      *ecdsa.PrivateKey
	kid      string
}

// NewIssuer makes a key and writes its JWKS.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	i := &Issuer{Issuer: "https://idp.test/", Audience: "permatrix", key: key, kid: "test-key"}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, i.kid)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	raw, _ := json.Marshal(set)
	i.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(i.JWKSFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return i
}

// Token signs a valid token for sub (an hour long; groups claim "groups"),
// after edit changes its claims.
func (i *Issuer) Token(t testing.TB, sub string, edit func(claims map[string]any)) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": i.Issuer, "aud": i.Audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if edit != nil {
		edit(c)
	}
	tok := jwt.New()
	for k, v := range c {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, i.kid)
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), i.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Config is identity.Config for verifying the issuer's tokens.
func (i *Issuer) Config() identity.Config {
	return identity.Config{Mode: "jwt", JWT: identity.JWTConfig{JWKS: i.JWKSFile, Issuer: i.Issuer, Audience: i.Audience, GroupsClaim: "groups"}}
}

// Identity verifies the issuer's tokens.
func (i *Issuer) Identity(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.New(context.Background(), i.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(id.Close)
	return id
}

// Flags are serve's flags for verifying the issuer's tokens.
func (i *Issuer) Flags() []string {
	return []string{"--identity", "jwt", "--jwt-jwks", i.JWKSFile, "--jwt-issuer", i.Issuer, "--jwt-audience", i.Audience, "--jwt-groups-claim", "groups"}
}
