package http_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/internal/identity"
)

// TestGroupsHeaderKeepsUnicodeSpaces: a group id is any string of 1 to
// 256 bytes without control characters, and "admins\u00a0" (a trailing
// no-break space) is not "admins" — not in a check's groups, a JWT's
// groups claim or the store. The groups header of --identity header=…
// (and X-Permatrix-Actor-Groups) trimmed each id with strings.TrimSpace,
// which trims Unicode's spaces too: a user whose identity provider put
// it in a group named "admins" with a no-break or an ideographic space
// was let through forward-auth as a member of "admins". Only the spaces
// HTTP lists put around their items (space, tab) are trimmed.
func TestGroupsHeaderKeepsUnicodeSpaces(t *testing.T) {
	id, err := identity.New(context.Background(), identity.Config{Mode: "header=X-Forwarded-User", GroupsHeader: "X-Forwarded-Groups"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken, Identity: id}))
	status, b := requestBody(t, http.MethodPost, base+"/v1/assignments", docTestToken, strings.NewReader(
		`{"subject":"group:admins","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p1"}}`))
	if status != http.StatusCreated {
		t.Fatalf("assignment: %d %s", status, b)
	}
	forwardAuth := func(groups string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"/v1/forward-auth", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-User", "mallory")
		req.Header.Set("X-Forwarded-Groups", groups)
		req.Header.Set("X-Permatrix-System", "celonis-task-mining")
		req.Header.Set("X-Permatrix-Action", "edit_users")
		req.Header.Set("X-Permatrix-Resource-Type", "project")
		req.Header.Set("X-Permatrix-Resource-Id", "p1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := res.Body.Read(buf)
			body.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return res.StatusCode, body.String()
	}
	// The group itself, and with HTTP's own spaces around it: a member.
	for _, groups := range []string{"admins", " admins ", "dev,\tadmins"} {
		if status, body := forwardAuth(groups); status != http.StatusOK {
			t.Errorf("groups %q: %d %s, want 200 (a member of admins)", groups, status, body)
		}
	}
	// Another group whose name holds a Unicode space: not a member.
	for _, groups := range []string{"admins\u00a0", "\u00a0admins", "admins\u3000", "admins\u2003", "\u0085admins", "dev, admins\u2009"} {
		if status, body := forwardAuth(groups); status != http.StatusForbidden {
			t.Errorf("groups %q: %d %s, want 403 (not the group admins)", groups, status, body)
		}
	}
}
