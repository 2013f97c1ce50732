package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// pacedLine is line n of a paced import: user:paced-<n> is a Celonis analyst.
func pacedLine(n int) string {
	return fmt.Sprintf(`{"subject":"user:paced-%d","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}`+"\n", n)
}

// postImport POSTs /v1/import?query with the body gen writes as it goes (a
// pipe: the body is sent while it is made) and returns the status and the
// answer (0 and the error when there is no answer).
func postImport(t *testing.T, base, query string, gen func(w io.Writer) error) (int, map[string]any, error) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen(pw)) }()
	defer pr.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/import"+query, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+docTestToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("POST /v1/import%s: %d %q: %v", query, res.StatusCode, raw, err)
	}
	return res.StatusCode, body, nil
}

// stored is how many assignments the store holds for subject.
func stored(t *testing.T, base, subject string) int {
	t.Helper()
	res, raw := exchange(t, http.MethodGet, base+"/v1/assignments?subject="+subject, docTestToken)
	var body struct{ Assignments []any }
	if res.StatusCode != http.StatusOK || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("GET /v1/assignments: %d %s", res.StatusCode, raw)
	}
	return len(body.Assignments)
}

// The wait for an import's client is bounded per wait, not per chunk: a
// client that keeps sending, slower than a chunk per importIdle, is not cut
// off (it was, with no answer, once importIdle had passed since the start
// or the last commit); one that stops sending for importIdle is.
func TestImportIdleIsPerWait(t *testing.T) {
	defer permhttp.SetImportIdle(time.Second)()
	base := serveOn(t, newTestServer(t, permhttp.Config{AdminToken: docTestToken}))

	const lines = 12
	status, body, err := postImport(t, base, "?chunk=10000", func(w io.Writer) error {
		for i := 1; i <= lines; i++ {
			if _, err := io.WriteString(w, pacedLine(i)); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond) // 2.4 s in all, never 1 s idle
		}
		return nil
	})
	if err != nil || status != http.StatusOK || body["lines"] != float64(lines) {
		t.Fatalf("a client sending a line every 200 ms for 2.4 s (idle bound 1 s): %d %v %v, want 200 and %d lines", status, body, err, lines)
	}
	if n := stored(t, base, "user:paced-12"); n != 1 {
		t.Fatalf("the last line is stored %d times", n)
	}

	status, body, err = postImport(t, base, "?chunk=10000", func(w io.Writer) error {
		if _, err := io.WriteString(w, pacedLine(100)); err != nil {
			return err
		}
		time.Sleep(4 * time.Second) // idle past the bound
		_, err := io.WriteString(w, pacedLine(101))
		return err
	})
	if status == http.StatusOK {
		t.Fatalf("a client idle for 4 s (idle bound 1 s): %d %v %v, want the import given up", status, body, err)
	}
	if n := stored(t, base, "user:paced-100"); n != 0 {
		t.Fatalf("the line read before the client went idle is stored: %d", n)
	}
}
