package http_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// TestInputParameterErrorsNameIt: a bad input query parameter of GET
// /v1/data/{path} is named as the input parameter, not as the body (it
// said `duplicate key "subject" in the body`, of a GET without one);
// the v0 API's input, which is the body, is still the body.
func TestInputParameterErrorsNameIt(t *testing.T) {
	base := serveOn(t, newTestServer(t, permhttp.Config{}))
	message := func(res *http.Response) string {
		t.Helper()
		defer res.Body.Close()
		var e struct{ Code, Message string }
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d %v", res.StatusCode, err)
		}
		return e.Message
	}
	for input, want := range map[string]string{
		`{"subject":"a","subject":"b"}`: `duplicate key "subject" in the input parameter`,
		`{"context":{"x":1,"x":2}}`:     `duplicate key "x" in object context of the input parameter`,
		`{} {}`:                         `the input parameter has data after the JSON value`,
		`not-json`:                      `malformed JSON at byte 1: invalid character 'o' in literal null (expecting 'u') (in the input parameter)`,
	} {
		res, err := http.Get(base + "/v1/data/permatrix/allow?input=" + url.QueryEscape(input))
		if err != nil {
			t.Fatal(err)
		}
		if msg := message(res); !strings.HasPrefix(msg, "parameter contains malformed input document: ") || !strings.Contains(msg, want) || strings.Contains(msg, "body") {
			t.Errorf("%s: %q, want it to say %q", input, msg, want)
		}
	}
	res, err := http.Post(base+"/v0/data/permatrix/allow", "application/json", strings.NewReader(`{"subject":"a","subject":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	if msg := message(res); !strings.Contains(msg, `duplicate key "subject" in the body`) {
		t.Errorf("v0 body: %q", msg)
	}
}
