package opa

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"

	"github.com/permatrix/permatrix"
)

// DefaultKeyID is the key id of signatures and verification keys when
// none is given (stock opa's default too).
const DefaultKeyID = "default"

// ApplyManifest overlays a manifest template (bundles/manifest.json) on
// b's manifest: its metadata, and its roots, which must be the ones the
// server relies on. An empty revision keeps b's content digest.
func ApplyManifest(bb *Bundle, template []byte) error {
	b := bb.b
	var m bundle.Manifest
	dec := json.NewDecoder(strings.NewReader(string(template)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("manifest template: %w", err)
	}
	if m.Roots != nil {
		roots := slices.Clone(*m.Roots)
		slices.Sort(roots)
		want := slices.Clone(Roots)
		slices.Sort(want)
		if !slices.Equal(roots, want) {
			return fmt.Errorf("manifest template: roots %q, want %q (policies in data.permatrix, catalogs in data.systems; data.%s belongs to the assignment store)", *m.Roots, Roots, permatrix.StoreRoot)
		}
	}
	if m.RegoVersion != nil && *m.RegoVersion != 1 {
		return fmt.Errorf("manifest template: rego_version %d, the policies are Rego v1", *m.RegoVersion)
	}
	if m.Revision != "" {
		b.Manifest.Revision = m.Revision
	}
	if len(m.Metadata) > 0 {
		b.Manifest.Metadata = m.Metadata
	}
	return nil
}

// SignOptions sign a bundle as `opa build --signing-key` does.
type SignOptions struct {
	// Key is the HMAC secret or the PEM private key (RSA, ECDSA), or a
	// file holding it.
	Key string
	// Algorithm is a JWS algorithm: RS256 (default), HS256, ES256, …
	Algorithm string
	// KeyID goes into the signature's header (kid); DefaultKeyID if empty.
	KeyID string
	// ClaimsFile optionally holds more JWT claims, e.g. a scope.
	ClaimsFile string
}

// WriteBundle writes b as a standard OPA bundle (.tar.gz: .manifest,
// data.json, the modules under their paths), signed when sign is non-nil.
func WriteBundle(w io.Writer, bb *Bundle, sign *SignOptions) error {
	b := bb.b
	if sign != nil {
		if sign.Key == "" {
			return errors.New("signing: no key")
		}
		alg := sign.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		if !keys.IsSupportedAlgorithm(alg) {
			return fmt.Errorf("signing: unsupported algorithm %q", alg)
		}
		kid := sign.KeyID
		if kid == "" {
			kid = DefaultKeyID
		}
		if err := b.GenerateSignature(bundle.NewSigningConfig(sign.Key, alg, sign.ClaimsFile), kid, true); err != nil {
			return fmt.Errorf("signing: %w", err)
		}
	}
	return bundle.NewWriter(w).UseModulePath(true).Write(*b)
}

// VerifyOptions say how a signed bundle is verified (serve's
// --verification-* flags, like `opa run`'s).
type VerifyOptions struct {
	// Key is the HMAC secret or PEM public key, or a file holding it.
	Key       string
	KeyID     string
	Algorithm string
	// Scope, when set, must match the signature's scope claim.
	Scope string
}

// Verification builds the bundle package's verification configuration.
func Verification(o VerifyOptions) (*bundle.VerificationConfig, error) {
	if o.Key == "" {
		return nil, errors.New("verification: no key")
	}
	if o.KeyID == "" {
		o.KeyID = DefaultKeyID
	}
	if o.Algorithm == "" {
		o.Algorithm = "RS256"
	}
	if !keys.IsSupportedAlgorithm(o.Algorithm) {
		return nil, fmt.Errorf("verification: unsupported algorithm %q", o.Algorithm)
	}
	if _, err := os.Stat(o.Key); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	kc, err := keys.NewKeyConfig(o.Key, o.Algorithm, o.Scope)
	if err != nil {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{o.KeyID: kc}, o.KeyID, o.Scope, nil), nil
}
