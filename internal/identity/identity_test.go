package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/identity"
)

func TestHeaderIdentity(t *testing.T) {
	ctx := context.Background()
	id, err := identity.New(ctx, identity.Config{Mode: "header=X-Auth-User", GroupsHeader: "X-Auth-Groups"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := id.Caller(ctx, http.Header{"X-Auth-User": {"ann"}, "X-Auth-Groups": {"ops, dev,,"}, "X-Permatrix-Subject": {"bob"}, "X-Forwarded-User": {"bob"}})
	if err != nil || c.Subject != "ann" || strings.Join(c.Groups, "|") != "ops|dev" {
		t.Fatalf("ann: %+v %v", c, err)
	}
	for name, h := range map[string]http.Header{
		"absent":          {"X-Forwarded-User": {"bob"}},
		"empty":           {"X-Auth-User": {""}},
		"twice":           {"X-Auth-User": {"ann", "bob"}},
		"control":         {"X-Auth-User": {"a\x01b"}},
		"too long":        {"X-Auth-User": {strings.Repeat("a", permatrix.MaxIDBytes+1)}},
		"bad group":       {"X-Auth-User": {"ann"}, "X-Auth-Groups": {"ok,\x7f"}},
		"groups twice":    {"X-Auth-User": {"ann"}, "X-Auth-Groups": {"a", "b"}},
		"too many groups": {"X-Auth-User": {"ann"}, "X-Auth-Groups": {manyGroups(identity.MaxGroups + 1)}},
	} {
		if c, err := id.Caller(ctx, h); err == nil || permatrix.ErrorCode(err) != permatrix.EUNAUTHORIZED {
			t.Errorf("%s: %+v %v, want unauthorized", name, c, err)
		}
	}

	// The default: X-Forwarded-User, no groups from headers, no override.
	def, err := identity.New(ctx, identity.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err = def.Caller(ctx, http.Header{"X-Forwarded-User": {"ann"}, "X-Forwarded-Groups": {"admins"}, "X-Permatrix-Subject": {"bob"}})
	if err != nil || c.Subject != "ann" || len(c.Groups) != 0 {
		t.Fatalf("default identity: %+v %v", c, err)
	}
	if def.VerifiesTokens() || def.String() != "header=X-Forwarded-User" {
		t.Fatalf("default identity is %s", def)
	}

	// --allow-subject-header: X-Permatrix-Subject wins when sent.
	legacy, err := identity.New(ctx, identity.Config{AllowSubjectHeader: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = legacy.Caller(ctx, http.Header{"X-Forwarded-User": {"ann"}, "X-Permatrix-Subject": {"bob"}}); err != nil || c.Subject != "bob" {
		t.Fatalf("allowed subject header: %+v %v", c, err)
	}
	if c, err = legacy.Caller(ctx, http.Header{"X-Forwarded-User": {"ann"}}); err != nil || c.Subject != "ann" {
		t.Fatalf("allowed subject header, not sent: %+v %v", c, err)
	}

	for _, bad := range []identity.Config{
		{Mode: "header="}, {Mode: "header=X User"}, {Mode: "basic"}, {Mode: "header=Authorization"},
		{Mode: "header=X-User", GroupsHeader: "bad header"}, {Mode: "jwt", GroupsHeader: "X-Groups"},
		// A credential read as a user or group id would be logged as one
		// (the decision log's input, a check's reasons).
		{Mode: "header=Cookie"}, {Mode: "header=proxy-authorization"},
		{Mode: "header=X-User", GroupsHeader: "authorization"}, {Mode: "header=X-User", GroupsHeader: "Cookie"},
		// JWT settings without --identity jwt: no token would be verified,
		// the header would be trusted — refused, not ignored.
		{Mode: "header=X-User", JWT: identity.JWTConfig{JWKS: "jwks.json"}}, {JWT: identity.JWTConfig{Issuer: "https://idp/"}},
		{JWT: identity.JWTConfig{Audience: "permatrix"}}, {JWT: identity.JWTConfig{GroupsClaim: "groups"}},
		// X-Permatrix-Subject would replace the verified token's subject.
		{Mode: "jwt", AllowSubjectHeader: true},
	} {
		if _, err := identity.New(ctx, bad, nil); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

func manyGroups(n int) string {
	gs := make([]string, n)
	for i := range gs {
		gs[i] = fmt.Sprint("g", i)
	}
	return strings.Join(gs, ",")
}

func TestMapClaims(t *testing.T) {
	cs := map[string]any{
		"sub": "s1", "email": "ann@example.com",
		"https://example.com/groups": []any{"a", "b", "a"},
		"realm_access":               map[string]any{"roles": []any{"r1"}},
		"one":                        "solo",
		"num":                        json.Number("7"),
	}
	for _, tc := range []struct {
		sub, groups string
		want        string // subject|groups, or "error"
	}{
		{"sub", "", "s1|"},
		{"email", "https://example.com/groups", "ann@example.com|a,b"},
		{"sub", "realm_access.roles", "s1|r1"},
		{"sub", "one", "s1|solo"},
		{"sub", "absent", "s1|"},
		{"num", "", "error"},
		{"absent", "", "error"},
		{"sub", "num", "error"},
		{"sub", "realm_access", "error"},
		{"realm_access.roles", "", "error"},
	} {
		c, err := identity.MapClaims(cs, tc.sub, tc.groups)
		got := c.Subject + "|" + strings.Join(c.Groups, ",")
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("MapClaims(%q, %q) = %q (%v), want %q", tc.sub, tc.groups, got, err, tc.want)
		}
	}
}

// FuzzMapClaims: for any claims document, MapClaims never panics and
// whatever caller it returns has a valid subject and at most MaxGroups
// valid, distinct groups.
//
// Longer run: go test ./internal/identity -run '^$' -fuzz FuzzMapClaims -fuzztime 5m
func FuzzMapClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"alice","groups":["a","b"]}`), "sub", "groups")
	f.Add([]byte(`{"sub":"alice","groups":"a"}`), "sub", "groups")
	f.Add([]byte(`{"sub":7,"groups":[1,null]}`), "sub", "groups")
	f.Add([]byte(`{"a":{"b":{"c":"x"}},"g":{"h":["y"]}}`), "a.b.c", "g.h")
	f.Add([]byte(`{"sub":"","groups":[""]}`), "sub", "groups")
	f.Add([]byte(`{"sub":"\u0000","groups":{}}`), "sub", "")
	f.Fuzz(func(t *testing.T, doc []byte, sub, groups string) {
		var cs map[string]any
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if dec.Decode(&cs) != nil {
			return
		}
		c, err := identity.MapClaims(cs, sub, groups)
		if err != nil {
			if permatrix.ErrorCode(err) != permatrix.EUNAUTHORIZED {
				t.Fatalf("error code %q: %v", permatrix.ErrorCode(err), err)
			}
			return
		}
		if !permatrix.ValidID(c.Subject) {
			t.Fatalf("subject %q", c.Subject)
		}
		if len(c.Groups) > identity.MaxGroups {
			t.Fatalf("%d groups", len(c.Groups))
		}
		seen := map[string]bool{}
		for _, g := range c.Groups {
			if !permatrix.ValidID(g) || seen[g] {
				t.Fatalf("group %q (seen %v)", g, seen[g])
			}
			seen[g] = true
		}
	})
}
