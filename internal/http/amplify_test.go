package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
	"github.com/permatrix/permatrix/test/harness"
)

// TestFreeFormBodiesBounded: a body of free-form JSON made of the
// cheapest values there are ({} is three bytes with its comma, and ~100
// bytes once a Go value and an OPA term) cost the server ~30 times what
// was sent: a 1 MiB check whose context held 330,000 {} allocated ~30 MB,
// and 16 such requests at once grew serve (GOGC=400) to 2.8 GB. Sent
// concurrently to every endpoint that reads free-form JSON without a
// token, each request allocates at most a small multiple of its body, and
// is refused before the values are built.
func TestFreeFormBodiesBounded(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	base := "http://" + addr.String()

	// 1 MiB less room for the rest of the body.
	empties := strings.TrimSuffix(strings.Repeat("{},", (1<<20-200)/3), ",")
	check := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":[` + empties + `]}}`
	input := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":[` + empties + `]}}`
	// At the bounds: a batch of checks whose contexts hold the most they
	// may (255 {} in a list: 256 values), and an input of the most values
	// the Data API takes without the token; both are answered.
	atBound := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":[` +
		strings.TrimSuffix(strings.Repeat("{},", 255), ",") + `]}}`
	batch := `{"checks":[` + strings.TrimSuffix(strings.Repeat(atBound+",", 1000), ",") + `]}`
	inputAtBound := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":[` +
		strings.TrimSuffix(strings.Repeat("{},", 4096-6), ",") + `]}}`
	deepInput := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":` +
		strings.Repeat("[", 4096-6) + strings.Repeat("]", 4096-6) + `}}`
	longNumber := strings.Repeat("9", 100_000)
	longNumberCheck := `{"subject":"ann","system":"blueprism","action":"import_release","context":{"release_contains":[` + longNumber + `]}}`
	const concurrent = 8
	// What one request may allocate: reading the body (io.ReadAll doubles
	// its buffer: ~2 times the body), a JSON decoder's buffers, and the
	// values up to the bound. It was 100 to 200 times the body, evaluated.
	const perRequest = 6 << 20
	rows := []struct {
		path, body string
		status     int
		code       string // the envelope's code
		allocated  uint64 // the most one request may allocate
	}{
		{"/v1/check", check, 400, "invalid", perRequest},
		{"/v1/check/batch", `{"checks":[` + check + `]}`, 200, "invalid", perRequest}, // the item's error
		{"/v1/data/permatrix/allow", `{"input":` + input + `}`, 400, "invalid_parameter", perRequest},
		{"/v0/data/permatrix/allow", input, 400, "invalid_parameter", perRequest},
		{"/", input, 400, "invalid_parameter", perRequest},
		// Evaluated, the values cost ~1.1 KiB each (decoded, an OPA term,
		// iterated by the rules): 4,096 of them ~4.6 MiB.
		{"/v1/data/permatrix/allow", `{"input":` + inputAtBound + `}`, 200, "result", perRequest},
		// 4,090 values nested one in the next (8 KiB): within the bound,
		// the rules' walk of the context made a path per value as long as
		// its depth, 8.4 million terms held at once by a comprehension.
		{"/v1/data/permatrix/allow", `{"input":` + deepInput + `}`, 200, "result", perRequest},
		// One number of 100,000 digits: the rules that compare or print it
		// (lib.uint64's n <= 2^64-1, "unknown kind %v") made it a big.Int
		// or big.Float at a cost quadratic in its digits (a million digits
		// was 2 GiB and 3.5 s on /v1/check, 4 GiB and 6 s as the Data
		// API's min_revision).
		{"/v1/check", longNumberCheck, 400, "invalid", perRequest},
		{"/v1/check/batch", `{"checks":[` + longNumberCheck + `]}`, 200, "invalid", perRequest},
		{"/v1/data/permatrix/decision", `{"input":` + longNumberCheck + `}`, 400, "invalid_parameter", perRequest},
		{"/v1/data/permatrix/decision", `{"input":{"subject":"ann","system":"blueprism","action":"import_release","min_revision":` +
			longNumber + `}}`, 400, "invalid_parameter", perRequest},
		// ~45 KiB a check, one check after another: what a batch holds at
		// once is one check's.
		{"/v1/check/batch", batch, 200, "results", 1000 * 64 << 10},
	}
	for _, r := range rows {
		if len(r.body) > 1<<20 {
			t.Fatalf("%s: a body of %d bytes is over the limit", r.path, len(r.body))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var wg sync.WaitGroup
		answers := make([]string, concurrent)
		statuses := make([]int, concurrent)
		for i := range concurrent {
			wg.Go(func() {
				resp, err := http.Post(base+r.path, "application/json", bytes.NewReader([]byte(r.body)))
				if err != nil {
					answers[i] = err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				statuses[i], answers[i] = resp.StatusCode, string(b)
			})
		}
		wg.Wait()
		runtime.ReadMemStats(&after)
		each := (after.TotalAlloc - before.TotalAlloc) / concurrent
		t.Logf("%s: %d bytes sent, %.1f MiB allocated a request (%.1f times the body)", r.path, len(r.body),
			float64(each)/(1<<20), float64(each)/float64(len(r.body)))
		for i := range concurrent {
			if statuses[i] != r.status || !strings.Contains(answers[i], fmt.Sprintf("%q", r.code)) {
				t.Errorf("%s: %d %.300s, want %d with code %q", r.path, statuses[i], answers[i], r.status, r.code)
				break
			}
		}
		if each > r.allocated {
			t.Errorf("%s: %.1f MiB allocated a request for a body of %.2f MiB, want at most %d MiB",
				r.path, float64(each)/(1<<20), float64(len(r.body))/(1<<20), r.allocated>>20)
		}
	}
	// What is refused says what and where.
	resp, err := http.Post(base+"/v1/check", "application/json", strings.NewReader(check))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Error.Message, "context") {
		t.Errorf("the refusal does not name the context: %q", e.Error.Message)
	}
}

// TestDataAPIInputBound: without the admin token the Data API's input
// holds at most 4,096 JSON values, in the body or ?input=, refused in
// OPA's envelope; the operator's input is bounded by the body limit only.
func TestDataAPIInputBound(t *testing.T) {
	srv := newTestServer(t, permhttp.Config{AdminToken: docTestToken})
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	harness.Serve(t, srv.Serve, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	base := "http://" + addr.String()
	input := func(values int) string { // the object, its key's array, and the array's elements
		return `{"a":[` + strings.TrimSuffix(strings.Repeat("0,", values-2), ",") + `]}`
	}
	const refusal = "the input holds more than 4096 JSON values"
	for _, c := range []struct {
		name, method, path, body string
		admin                    bool
		status                   int
	}{
		{"4096 values", "POST", "/v1/data/permatrix/allow", `{"input":` + input(4096) + `}`, false, 200},
		{"4097 values", "POST", "/v1/data/permatrix/allow", `{"input":` + input(4097) + `}`, false, 400},
		{"4097 values, v0", "POST", "/v0/data/permatrix/allow", input(4097), false, 400},
		{"4097 values, POST /", "POST", "/", input(4097), false, 400},
		{"4097 values in ?input=", "GET", "/v1/data/permatrix/allow?input=" + input(4097), "", false, 400},
		{"100,000 values with the admin token", "POST", "/v1/data/permatrix/allow", `{"input":` + input(100_000) + `}`, true, 200},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		if c.admin {
			req.Header.Set("Authorization", "Bearer "+docTestToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Code, Message string }
		_ = json.Unmarshal(raw, &e)
		switch {
		case resp.StatusCode != c.status:
			t.Errorf("%s: %d %.300s, want %d", c.name, resp.StatusCode, raw, c.status)
		case c.status == 400 && (e.Code != "invalid_parameter" || !strings.Contains(e.Message, refusal)):
			t.Errorf("%s: %.300s, want invalid_parameter saying %q", c.name, raw, refusal)
		case resp.Header.Get("WWW-Authenticate") != "":
			// Taking the input without the token is no refusal: nothing
			// asks the client for credentials.
			t.Errorf("%s: %d with WWW-Authenticate %q", c.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}
