package pdp_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// clockCatalog is a system of one action, decided by clockPolicy.
const clockCatalog = `{
  "name": "Clock", "vendor": "test", "package": "clock", "documents": [],
  "scope_types": ["service"], "context_keys": {},
  "roles": {}, "permissions": {},
  "actions": {"read": {"scopes": ["service"]}},
  "custom_roles": false
}`

// clockBundle is the repository's permatrix entrypoints and library with
// a system whose decision is policy (a Rego body for package clock).
func clockBundle(t testing.TB, policy string, more map[string]string) *opa.Bundle {
	return systemBundle(t, "clock", clockCatalog, policy, more)
}

// systemBundle is the repository's permatrix entrypoints and library with
// one system, pkg, of catalog, decided by policy (a Rego body for package
// permatrix.systems.<pkg>), and more modules.
func systemBundle(t testing.TB, pkg, catalog, policy string, more map[string]string) *opa.Bundle {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(permatrix.DefaultBundle, "policies/permatrix", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(permatrix.DefaultBundle, p)
		fsys[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys["policies/"+pkg+"/"+pkg+".rego"] = &fstest.MapFile{Data: []byte("package permatrix.systems." + pkg + "\n\n" + policy)}
	for name, src := range more {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	fsys["systems/"+pkg+"/data.json"] = &fstest.MapFile{Data: []byte(catalog)}
	b, err := opa.ReadLayout(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecisionCacheTimeBoundPolicy: a bundle's decision may depend on more
// than its input and the store — the clock (access that ends at a given
// time), randomness, http.send. Its answer is not a function of what the
// cache keys and tracks, and must not be answered from the cache: an
// access that has ended is not allowed from memory.
func TestDecisionCacheTimeBoundPolicy(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	if svc.Policy().Varies {
		t.Fatal("the default bundle's decisions are said to read the clock: none does")
	}
	for _, tc := range []struct {
		name string
		open string            // the rule open, given until
		more map[string]string // more modules
	}{
		{"in the system's package", "open if time.now_ns() < %d\n", nil},
		{"through a function of another package", "open if window.before(%d)\n", map[string]string{
			"policies/clock/window.rego": "package permatrix.window\n\nbefore(t) if {\n\tnow := time.now_ns()\n\tnow < t\n}\n",
		}},
		{"through a with", "open if lib.valid_id(\"x\") with lib.valid_id as clock_open\nclock_open(_) if time.now_ns() < %d\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			until := time.Now().Add(time.Second).UnixNano() // the bundle compiles meanwhile
			policy := `import data.permatrix.lib
import data.permatrix.window

# Access ends at a fixed time (a break-glass window).
` + fmt.Sprintf(tc.open, until) + `
decision := lib.verdict({{"kind": "window", "scope": {"type": "service"}}}, set()) if open
else := lib.verdict(set(), {lib.missing_condition("clock", "the window has ended")})
`
			p, err := svc.Activate(ctx, clockBundle(t, policy, tc.more))
			if err != nil {
				t.Fatal(err)
			}
			if !p.Varies {
				t.Error("the policy's decisions read the clock and are not said to")
			}
			ch := permatrix.Check{Subject: "ann", System: "clock", Action: "read"}
			for range 3 {
				if d, err := svc.Check(ctx, ch); err != nil || !d.Allow {
					t.Fatalf("inside the window: %+v %v, want an allow", d, err)
				}
			}
			time.Sleep(time.Until(time.Unix(0, until)) + 50*time.Millisecond)
			if d, err := svc.Check(ctx, ch); err != nil || d.Allow {
				t.Fatalf("after the window: %+v %v, want a deny (cache %+v)", d, err, svc.CacheStats())
			}
		})
	}
}

// TestDecisionCacheExpiringToken: io.jwt.decode_verify without a time
// constraint checks a token's exp and nbf against the clock — OPA does not
// flag it nondeterministic, yet a token that has expired is not valid any
// more: the decision of a policy that verifies one is not kept.
func TestDecisionCacheExpiringToken(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	p, err := svc.Activate(ctx, clockBundle(t, `import data.permatrix.lib

open if {
	[valid, _, _] := io.jwt.decode_verify(input.context.token, {"secret": "s"})
	valid
}

decision := lib.verdict({{"kind": "token", "scope": {"type": "service"}}}, set()) if open
else := lib.verdict(set(), {lib.missing_condition("clock", "no valid token")})
`, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Varies {
		t.Error("the policy's decisions read the clock (a token's exp) and are not said to")
	}
	exp := time.Now().Unix() + 2 // at least a second ahead: exp is in whole seconds
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(fmt.Appendf(nil, `{"sub":"ann","exp":%d}`, exp))
	mac := hmac.New(sha256.New, []byte("s"))
	mac.Write([]byte(signing))
	token := signing + "." + enc(mac.Sum(nil))
	ch := permatrix.Check{Subject: "ann", System: "clock", Action: "read", Context: map[string]any{"token": token}}
	for range 3 {
		if d, err := svc.Check(ctx, ch); err != nil || !d.Allow {
			t.Fatalf("before the token expires: %+v %v, want an allow", d, err)
		}
	}
	time.Sleep(time.Until(time.Unix(exp, 0)) + 100*time.Millisecond)
	if d, err := svc.Check(ctx, ch); err != nil || d.Allow {
		t.Fatalf("after the token expired: %+v %v, want a deny (cache %+v)", d, err, svc.CacheStats())
	}
}

// TestDecisionCacheTimeBoundElse: the rule that reads the clock is named
// only in an else branch of the system's decision, and no other decision
// refers to that decision (a bundle whose data.permatrix.decision does
// not dispatch to the systems' packages).
func TestDecisionCacheTimeBoundElse(t *testing.T) {
	ctx := context.Background()
	svc := newService(t)
	entry, err := fs.ReadFile(permatrix.DefaultBundle, "policies/permatrix/permatrix.rego")
	if err != nil {
		t.Fatal(err)
	}
	undispatched := strings.Replace(string(entry), "system_verdict := data.permatrix.systems[lib.system.package].decision if {", "system_verdict := lib.verdict(set(), set()) if {", 1)
	if undispatched == string(entry) {
		t.Fatal("permatrix.rego has no dispatch to replace")
	}
	until := time.Now().Add(time.Second).UnixNano() // the bundle compiles meanwhile
	p, err := svc.Activate(ctx, clockBundle(t, fmt.Sprintf(`import data.permatrix.lib

open if time.now_ns() < %d

decision := lib.verdict(set(), {lib.missing_condition("clock", "nobody")}) if input.subject == "nobody"
else := lib.verdict({{"kind": "window", "scope": {"type": "service"}}}, set()) if open
else := lib.verdict(set(), {lib.missing_condition("clock", "the window has ended")})
`, until), map[string]string{"policies/permatrix/permatrix.rego": undispatched}))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Varies {
		t.Error("the policy's decisions read the clock and are not said to")
	}
	ch := permatrix.Check{Subject: "ann", System: "clock", Action: "read"}
	for range 3 {
		if d, err := svc.Check(ctx, ch); err != nil || !d.Allow {
			t.Fatalf("inside the window: %+v %v, want an allow", d, err)
		}
	}
	time.Sleep(time.Until(time.Unix(0, until)) + 50*time.Millisecond)
	if d, err := svc.Check(ctx, ch); err != nil || d.Allow {
		t.Fatalf("after the window: %+v %v, want a deny (cache %+v)", d, err, svc.CacheStats())
	}
}
