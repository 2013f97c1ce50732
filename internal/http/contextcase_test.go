package http_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestContextKeyInAnotherCaseRefused: a check's context is free-form, but
// a key that differs only in case from one the system declares
// (GET /v1/systems' context_keys) is the client meaning that key, and the
// rules never read it: blueprism's import_release with
// {"Release_contains":["process"]} was allowed to a holder of
// import_release alone, where {"release_contains":["process"]} needs
// import_process too — a key's case turned a deny into an allow. It is
// refused in /v1/check's words (400; a batch item's error; the Data API's
// decision denied with that error), as a case variant of a check's own
// keys is. A key no system declares stays the client's.
func TestContextKeyInAnotherCaseRefused(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	if code, raw := post(t, base+"/v1/assignments", docTestToken,
		`{"subject":"user:rel","system":"blueprism","permission":"import_release","scope":{"type":"service"}}`); code != http.StatusCreated {
		t.Fatalf("assigning: %d %s", code, raw)
	}
	check := func(context string) string {
		return `{"subject":"rel","system":"blueprism","action":"import_release","context":` + context + `}`
	}
	type answer struct {
		Allow *bool `json:"allow"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	for _, c := range []struct {
		context, refusal string
		allow            bool
	}{
		{context: `{"Release_contains":["process"]}`, refusal: `unknown key "Release_contains" in object context (keys are case-sensitive: did you mean "release_contains"?)`},
		{context: `{"OVERWRITE_EXISTING":["process"]}`, refusal: `unknown key "OVERWRITE_EXISTING" in object context (keys are case-sensitive: did you mean "overwrite_existing"?)`},
		{context: `{"release_contains":["process"],"Release_Contains":[]}`, refusal: `unknown key "Release_Contains" in object context (keys are case-sensitive: did you mean "release_contains"?)`},
		// As declared: the rules read it.
		{context: `{"release_contains":["process"]}`, allow: false},
		{context: `{"release_contains":[]}`, allow: true},
		// A key no system declares: the client's own, as ever.
		{context: `{"ticket":"CHG-1"}`, allow: true},
	} {
		code, raw := post(t, base+"/v1/check", "", check(c.context))
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%s: /v1/check: %d %s", c.context, code, raw)
		}
		switch {
		case c.refusal != "" && (code != http.StatusBadRequest || a.Error == nil || a.Error.Message != c.refusal):
			t.Errorf("%s: /v1/check: %d %s, want 400 %q", c.context, code, raw, c.refusal)
		case c.refusal == "" && (code != http.StatusOK || a.Allow == nil || *a.Allow != c.allow):
			t.Errorf("%s: /v1/check: %d %s, want allow %v", c.context, code, raw, c.allow)
		}

		code, raw = post(t, base+"/v1/check/batch", "", `{"checks":[`+check(c.context)+`]}`)
		var batch struct{ Results []answer }
		if err := json.Unmarshal(raw, &batch); err != nil || code != http.StatusOK || len(batch.Results) != 1 {
			t.Fatalf("%s: /v1/check/batch: %d %s", c.context, code, raw)
		}
		item := batch.Results[0]
		switch {
		case c.refusal != "" && (item.Error == nil || item.Error.Message != c.refusal || item.Allow != nil):
			t.Errorf("%s: /v1/check/batch: %s, want the item's error %q", c.context, raw, c.refusal)
		case c.refusal == "" && (item.Allow == nil || *item.Allow != c.allow):
			t.Errorf("%s: /v1/check/batch: %s, want allow %v", c.context, raw, c.allow)
		}

		code, raw = post(t, base+"/v1/data/permatrix/decision", "", `{"input":`+check(c.context)+`}`)
		var got struct {
			Result struct {
				Allow  *bool    `json:"allow"`
				Errors []string `json:"errors"`
			} `json:"result"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Result.Allow == nil {
			t.Fatalf("%s: Data API: %d %s", c.context, code, raw)
		}
		switch {
		case c.refusal != "" && (*got.Result.Allow || !slices.Contains(got.Result.Errors, c.refusal)):
			t.Errorf("%s: Data API %s, want allow false and the error %q", c.context, raw, c.refusal)
		case c.refusal == "" && (*got.Result.Allow != c.allow || len(got.Result.Errors) > 0):
			t.Errorf("%s: Data API %s, want allow %v", c.context, raw, c.allow)
		}
	}
}
