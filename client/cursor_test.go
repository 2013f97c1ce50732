package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
)

// A server whose next_cursor does not move forward (a bug, or a server
// that is not permatrix) must not keep the listings' loops going for
// ever: Members gathered every page's members into memory without end,
// and AllAssignments asked again and again. Only a hostile server can
// answer so: this one does, every page the same.
func TestListingsEndWhereTheCursorDoesNotAdvance(t *testing.T) {
	var asked int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		w.Header().Set("Content-Type", "application/json")
		switch {
		case asked > 100:
			http.Error(w, "asked too often", http.StatusTeapot)
		case strings.HasSuffix(r.URL.Path, "/members"):
			_, _ = w.Write([]byte(`{"members":["u1"],"next_cursor":"u1","revision":1}`))
		default:
			_, _ = w.Write([]byte(`{"assignments":[],"next_cursor":"a1","revision":1}`))
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := c.Members(ctx, "g"); err == nil || !strings.Contains(err.Error(), "does not advance") {
		t.Errorf("Members over a cursor that does not advance: %v", err)
	}
	if asked > 3 {
		t.Errorf("Members asked %d pages of a cursor that does not advance", asked)
	}
	asked = 0
	var last error
	for _, err := range c.AllAssignments(ctx, permatrix.AssignmentFilter{}) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), "does not advance") || asked > 3 {
		t.Errorf("AllAssignments over a cursor that does not advance: %v after %d pages", last, asked)
	}
}
