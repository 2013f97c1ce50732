package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/permatrix/permatrix"
)

// DefaultAlgorithms are the signature algorithms accepted without
// --jwt-algorithms: the asymmetric ones. HMAC needs the verifier to hold the
// signing secret, so it is accepted only when named (and then only with
// symmetric keys, which a public JWKS does not publish).
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWTConfig configures the JWT verifier.
type JWTConfig struct {
	// JWKS is the key set: a file, or an https:// URL fetched, cached and
	// refreshed (Cache-Control within [5 min, 1 h]).
	JWKS     string
	Issuer   string // required: the iss every token must carry
	Audience string // required: a value the token's aud must hold
	// ClockSkew is how far exp, nbf and iat may be off.
	ClockSkew time.Duration
	// SubjectClaim names the user id claim (default "sub"); GroupsClaim the
	// groups claim ("" takes none). A name not found as a claim is read as
	// a dotted path into nested objects (realm_access.roles).
	SubjectClaim, GroupsClaim string
	// Algorithms accepted (default DefaultAlgorithms); "none" never is.
	Algorithms []string
	// RefreshInterval bounds refetches of the key set when a token names a
	// key id the set does not hold (default 30 s): a new signing key is
	// found soon after rotation, and forged kids cannot flood the IdP.
	RefreshInterval time.Duration
	// HTTPClient fetches an https JWKS (default: 10 s timeout, no redirects
	// to other schemes). Tests set one that trusts their server.
	HTTPClient *http.Client
}

// JWT verifies bearer tokens.
type JWT struct {
	cfg  JWTConfig
	algs map[string]bool
	keys keySource
	// cancel stops the JWKS cache's goroutines.
	cancel context.CancelFunc
}

// keySource is the key set, with a refetch for unknown key ids.
type keySource interface {
	set(ctx context.Context) (jwk.Set, error)
	refresh(ctx context.Context) (jwk.Set, error)
}

// NewJWT checks cfg and loads the key set.
func NewJWT(ctx context.Context, cfg JWTConfig, log *slog.Logger) (*JWT, error) {
	switch {
	case cfg.JWKS == "":
		return nil, errors.New("--identity jwt needs --jwt-jwks: a JWKS file or https URL")
	case cfg.Issuer == "":
		return nil, errors.New("--identity jwt needs --jwt-issuer: tokens of any other issuer are refused")
	case cfg.Audience == "":
		return nil, errors.New("--identity jwt needs --jwt-audience: a token minted for another service must not be accepted here")
	case cfg.ClockSkew < 0 || cfg.ClockSkew > 10*time.Minute:
		return nil, fmt.Errorf("--jwt-clock-skew %s: want 0 to 10m", cfg.ClockSkew)
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	j := &JWT{cfg: cfg, algs: map[string]bool{}}
	for _, a := range cfg.Algorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(a)
		if !ok || alg == jwa.NoSignature() {
			return nil, fmt.Errorf("--jwt-algorithms: %q is not a signature algorithm permatrix accepts (want e.g. RS256, ES256, EdDSA)", a)
		}
		j.algs[alg.String()] = true
	}
	switch {
	case strings.HasPrefix(cfg.JWKS, "https://"):
		cctx, cancel := context.WithCancel(context.Background())
		src, err := newURLKeys(ctx, cctx, cfg, log)
		if err != nil {
			cancel()
			return nil, err
		}
		j.keys, j.cancel = src, cancel
	case strings.Contains(cfg.JWKS, "://"):
		return nil, fmt.Errorf("--jwt-jwks %s: a URL must be https (keys fetched in clear could be swapped)", cfg.JWKS)
	default:
		src, err := newFileKeys(cfg.JWKS, cfg.RefreshInterval)
		if err != nil {
			return nil, err
		}
		j.keys = src
	}
	return j, nil
}

// Close stops the key set's background refresh.
func (j *JWT) Close() {
	if j.cancel != nil {
		j.cancel()
	}
}

// Verify checks token's signature against the key set, then its issuer,
// audience and times, and maps its claims to a caller. Every failure is an
// EUNAUTHORIZED error.
func (j *JWT) Verify(ctx context.Context, token string) (Caller, error) {
	// Compact serialization only: the JSON forms can carry several
	// signatures or unprotected headers, which no IdP issues.
	if strings.Count(token, ".") != 2 {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: not a compact JWS (header.payload.signature)")
	}
	// jws reports a key provider's refusal only as "no matching keys":
	// keep ours, which says why.
	var keyErr error
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, msg *jws.Message) error {
		keyErr = j.fetchKeys(ctx, sink, sig, msg)
		return keyErr
	})
	tok, err := jwt.ParseString(token,
		jwt.WithKeyProvider(provider),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithIssuer(j.cfg.Issuer),
		jwt.WithAudience(j.cfg.Audience),
		jwt.WithAcceptableSkew(j.cfg.ClockSkew),
		jwt.WithRequiredClaim("exp"),
	)
	if err != nil {
		if keyErr != nil {
			err = keyErr
		}
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: %s", tokenError(err))
	}
	raw, err := json.Marshal(tok)
	if err != nil {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: claims: %v", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: claims: %v", err)
	}
	return MapClaims(claims, j.cfg.SubjectClaim, j.cfg.GroupsClaim)
}

// tokenError shortens jwx's wrapped errors to their last, telling part.
func tokenError(err error) string {
	msg := err.Error()
	// An alg jwx does not know ("None", a made-up one) is refused while
	// the header is parsed, before any key is asked for: its last words
	// are only the quoted name.
	if _, alg, ok := strings.Cut(msg, "unknown SignatureAlgorithm: "); ok {
		return "algorithm " + alg + " is not accepted"
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return msg
}

// fetchKeys gives jws the keys a signature may be verified with: only for
// an allowed algorithm, only keys whose type fits it (an RSA public key
// never becomes an HMAC secret), with the signature's kid when it names
// one. An unknown kid refetches the set, at most once per RefreshInterval.
func (j *JWT) fetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	alg, ok := h.Algorithm()
	if !ok || !j.algs[alg.String()] {
		return fmt.Errorf("algorithm %q is not accepted", alg.String())
	}
	// RFC 7515 section 4.1.11: an extension the issuer marks critical and
	// the recipient does not understand refuses the JWS; jws.Verify does
	// not check (only its fast path refuses "crit"). permatrix
	// understands none.
	if crit, ok := h.Critical(); ok {
		if len(crit) == 0 {
			return errors.New(`the "crit" header is empty`)
		}
		return fmt.Errorf("critical extension %q is not understood", crit[0])
	}
	kid, _ := h.KeyID()
	set, err := j.keys.set(ctx)
	if err != nil {
		return err
	}
	keys := candidates(set, kid, alg)
	if len(keys) == 0 && kid != "" {
		if set, err = j.keys.refresh(ctx); err != nil {
			return err
		}
		keys = candidates(set, kid, alg)
	}
	if len(keys) == 0 {
		if kid != "" {
			return fmt.Errorf("no %s key with kid %q in the key set", alg, kid)
		}
		return fmt.Errorf("no %s key in the key set", alg)
	}
	for _, k := range keys {
		sink.Key(alg, k)
	}
	return nil
}

// candidates are the keys of set that may verify a signature of alg with
// key id kid ("" matches any).
func candidates(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) []jwk.Key {
	want := keyTypeFor(alg)
	var out []jwk.Key
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k == nil || k.KeyType() != want {
			continue
		}
		if id, _ := k.KeyID(); kid != "" && id != kid {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		if ka, ok := k.Algorithm(); ok && ka.String() != alg.String() {
			continue
		}
		out = append(out, k)
	}
	return out
}

// keyTypeFor is the JWK key type an algorithm signs with.
func keyTypeFor(alg jwa.SignatureAlgorithm) jwa.KeyType {
	switch s := alg.String(); {
	case strings.HasPrefix(s, "RS"), strings.HasPrefix(s, "PS"):
		return jwa.RSA()
	case strings.HasPrefix(s, "ES"):
		return jwa.EC()
	case strings.HasPrefix(s, "HS"):
		return jwa.OctetSeq()
	case strings.HasPrefix(s, "Ed"):
		return jwa.OKP()
	}
	return jwa.InvalidKeyType()
}

// fileKeys is a JWKS file, read again (at most once per interval) when a
// token names a key id it does not hold: rotating keys means replacing the
// file.
type fileKeys struct {
	path     string
	interval time.Duration
	now      func() time.Time // time.Now; a test's clock (export_test.go)

	mu   sync.Mutex
	keys jwk.Set
	read time.Time
}

func newFileKeys(path string, interval time.Duration) (*fileKeys, error) {
	f := &fileKeys{path: path, interval: interval, now: time.Now}
	set, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	f.keys, f.read = set, f.now()
	return f, nil
}

func readKeyFile(path string) (jwk.Set, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--jwt-jwks: %w", err)
	}
	return parseKeySet(path, raw)
}

// parseKeySet parses a JWKS document; one without keys is an error.
func parseKeySet(where string, raw []byte) (jwk.Set, error) {
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--jwt-jwks %s: not a JWK set: %w", where, err)
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("--jwt-jwks %s: the key set holds no keys", where)
	}
	return set, nil
}

func (f *fileKeys) set(context.Context) (jwk.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys, nil
}

func (f *fileKeys) refresh(context.Context) (jwk.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.read) < f.interval {
		return f.keys, nil
	}
	f.read = now
	set, err := readKeyFile(f.path)
	if err != nil {
		return f.keys, nil // a broken edit keeps the last good keys
	}
	f.keys = set
	return set, nil
}

// urlKeys is an https JWKS kept by jwx's cache (httprc): refreshed in the
// background as the server's Cache-Control says, within [5 min, 1 h], and
// on demand for an unknown kid, at most once per interval.
type urlKeys struct {
	url      string
	cache    *jwk.Cache
	keys     jwk.Set // the cache's current set, read without a round trip to its goroutine
	interval time.Duration
	now      func() time.Time // time.Now; a test's clock (export_test.go)

	mu      sync.Mutex // one on-demand refresh at a time
	fetched time.Time
}

func newURLKeys(ctx, life context.Context, cfg JWTConfig, log *slog.Logger) (*urlKeys, error) {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errors.New("the JWKS redirected to a non-https URL")
			}
			return nil
		}}
	}
	// The first fetch decides whether serve starts: a wrong URL or a
	// server that does not answer is a startup error, not 401s later. It is
	// the one the cache starts when the URL is registered, waited for until
	// it succeeds or fails (the error sink hands its error over while
	// starting): a Refresh of our own would be a second fetch beside it,
	// the background one landing at any time after.
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	first, failed := context.WithCancelCause(fctx)
	defer failed(nil)
	var starting atomic.Bool
	starting.Store(true)
	cache, err := jwk.NewCache(life, httprc.NewClient(httprc.WithErrorSink(errsink.NewFunc(func(_ context.Context, err error) {
		if starting.Load() {
			failed(err)
			return
		}
		log.Warn("refreshing the JWKS failed; the last keys stay in use", "jwks", cfg.JWKS, "err", err)
	}))))
	if err != nil {
		return nil, err
	}
	if err := cache.Register(ctx, cfg.JWKS, jwk.WithHTTPClient(client), jwk.WithWaitReady(false),
		jwk.WithMinInterval(5*time.Minute), jwk.WithMaxInterval(time.Hour)); err != nil {
		return nil, fmt.Errorf("--jwt-jwks %s: %w", cfg.JWKS, err)
	}
	u := &urlKeys{url: cfg.JWKS, cache: cache, interval: cfg.RefreshInterval, now: time.Now}
	res, err := cache.LookupResource(ctx, cfg.JWKS)
	if err != nil {
		return nil, fmt.Errorf("--jwt-jwks %s: %w", cfg.JWKS, err)
	}
	if err := res.Ready(first); err != nil {
		return nil, fmt.Errorf("--jwt-jwks %s: fetching the key set: %w", cfg.JWKS, context.Cause(first))
	}
	starting.Store(false)
	set := res.Resource()
	if set == nil || set.Len() == 0 {
		return nil, fmt.Errorf("--jwt-jwks %s: the key set holds no keys", cfg.JWKS)
	}
	if u.keys, err = cache.CachedSet(cfg.JWKS); err != nil {
		return nil, fmt.Errorf("--jwt-jwks %s: %w", cfg.JWKS, err)
	}
	u.fetched = u.now()
	return u, nil
}

func (u *urlKeys) set(context.Context) (jwk.Set, error) { return u.keys, nil }

func (u *urlKeys) refresh(ctx context.Context) (jwk.Set, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	if now.Sub(u.fetched) < u.interval {
		return u.set(ctx)
	}
	u.fetched = now
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := u.cache.Refresh(rctx, u.url); err != nil {
		return u.set(ctx) // the last good keys stay in use
	}
	return u.set(ctx)
}

// MapClaims takes the caller out of verified claims: the subject claim must
// be a user id string; the groups claim, if configured and present, a
// string or an array of strings, each a valid id. Anything else is an
// EUNAUTHORIZED error (a token whose groups cannot be read is refused
// rather than read as "no groups").
func MapClaims(claims map[string]any, subjectClaim, groupsClaim string) (Caller, error) {
	v, ok := claim(claims, subjectClaim)
	if !ok {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: no %q claim", subjectClaim)
	}
	sub, ok := v.(string)
	if !ok || !permatrix.ValidID(sub) {
		return Caller{}, permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: claim %q is not a user id (a string of 1 to %d bytes, no control characters)", subjectClaim, permatrix.MaxIDBytes)
	}
	c := Caller{Subject: sub}
	if groupsClaim == "" {
		return c, nil
	}
	v, ok = claim(claims, groupsClaim)
	if !ok || v == nil {
		return c, nil
	}
	bad := permatrix.Errorf(permatrix.EUNAUTHORIZED, "invalid token: claim %q must be a group id or an array of at most %d group ids", groupsClaim, MaxGroups)
	var gs []any
	switch x := v.(type) {
	case string:
		gs = []any{x}
	case []any:
		gs = x
	default:
		return Caller{}, bad
	}
	if len(gs) > MaxGroups {
		return Caller{}, bad
	}
	for _, g := range gs {
		s, ok := g.(string)
		if !ok || !permatrix.ValidID(s) {
			return Caller{}, bad
		}
		if !slices.Contains(c.Groups, s) {
			c.Groups = append(c.Groups, s)
		}
	}
	return c, nil
}

// claim is claims[name], else the value at name read as a dotted path
// ("realm_access.roles"). Namespaced claims ("https://x.example/groups")
// hold dots, so the whole name is tried first.
func claim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}
