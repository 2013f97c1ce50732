package identity_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/identity"
)

// A token whose alg jwx does not know ("None", "none " or a made-up one)
// was refused with jwx's last words only: `invalid token: "None"`, which
// names no problem. It is refused as an algorithm not accepted, as "none"
// and "HS256" are.
func TestJWTUnknownAlgorithmSaysSo(t *testing.T) {
	rs := rsaSigner(t, "rsa-1")
	file := writeFile(t, t.TempDir(), "jwks.json", jwks(t, rs))
	id := newJWTIdentity(t, identity.JWTConfig{JWKS: file, ClockSkew: 30 * time.Second})
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims(nil))
	for _, alg := range []string{"None", "NONE", "none ", "RS257", ""} {
		header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": "rsa-1"})
		token := enc(header) + "." + enc(payload) + "." + enc([]byte("sig"))
		refused(t, id, token, `algorithm `+string(mustJSON(alg))+` is not accepted`)
	}
}

func mustJSON(s string) []byte { b, _ := json.Marshal(s); return b }
