package http_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestImportLinesCounted: /metrics counts the lines imports committed, by
// outcome, as each commit is made — an import's progress as the server
// has it (a client's count of lines sent runs ahead by what the server
// holds). A refused line's chunk counts nothing; the chunks before it do.
func TestImportLinesCounted(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			fmt.Fprintf(&b, `{"subject":"user:m%d","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`+"\n", i)
		}
		return b.String()
	}
	counted := func(want map[string]int) {
		t.Helper()
		status, body := request(t, http.MethodGet, base+"/metrics", "")
		if status != http.StatusOK {
			t.Fatalf("/metrics: %d", status)
		}
		for outcome, n := range want {
			line := fmt.Sprintf("permatrix_import_lines_total{outcome=%q} %d\n", outcome, n)
			if !strings.Contains(string(body), line) {
				t.Errorf("/metrics lacks %q:\n%s", line, grepLines(string(body), "permatrix_import_lines"))
			}
		}
	}
	imp := func(chunk, body string) int {
		status, _ := requestBody(t, http.MethodPost, base+"/v1/import?chunk="+chunk, docTestToken, strings.NewReader(body))
		return status
	}
	if status := imp("10", lines(1, 25)); status != http.StatusOK {
		t.Fatalf("import: %d", status)
	}
	counted(map[string]int{"imported": 25, "already_stored": 0})
	// The same lines again and 10 more: no-ops counted apart.
	if status := imp("0", lines(1, 35)); status != http.StatusOK {
		t.Fatalf("import again: %d", status)
	}
	counted(map[string]int{"imported": 35, "already_stored": 25})
	// Refused at line 15 (an unknown role): the chunk of lines 11 to 20 counts nothing.
	body := lines(36, 49) + `{"subject":"user:bad","system":"celonis-task-mining","role":"no_such_role","scope":{"type":"service"}}` + "\n" + lines(51, 60)
	if status := imp("10", body); status != http.StatusUnprocessableEntity {
		t.Fatalf("import with a refused line: %d, want 422", status)
	}
	counted(map[string]int{"imported": 45, "already_stored": 25})
}
