package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestDataAPIRefusesTheIdsCheckRefuses: POST /v1/check answers 400 for a
// subject permatrix.ValidID refuses (over 256 bytes, counted in bytes; a
// C0 control character or DEL); POST /v1/data/permatrix/decision, which
// takes any input, decides it with the same refusal in its errors (the
// policies' lib.valid_id), and both take the ids next to those.
func TestDataAPIRefusesTheIdsCheckRefuses(t *testing.T) {
	base := serveOn(t, newDocTestServer(t))
	ids := map[string]bool{ // id: valid
		"alice":                        true,
		strings.Repeat("a", 256):       true,
		strings.Repeat("a", 257):       false,
		strings.Repeat("é", 128):       true,  // 256 bytes, 128 characters
		strings.Repeat("é", 128) + "a": false, // 257 bytes, 129 characters
		strings.Repeat("é", 127) + "a": true,  // 255 bytes
		strings.Repeat("€", 85) + "a":  true,  // 256 bytes, 86 characters
		strings.Repeat("€", 85) + "ab": false, // 257 bytes
		strings.Repeat("😀", 64):        true,  // 256 bytes, 64 characters
		strings.Repeat("😀", 64) + "a":  false,
		"a\u0080b":                     true, // a C1 control is two bytes, neither one Go refuses
		"a b~":                         true,
		"":                             false,
	}
	for c := 0; c < 0x20; c++ {
		ids["a"+string(rune(c))+"b"] = false
	}
	ids["a\x7fb"] = false
	for id, valid := range ids {
		check := map[string]any{"subject": id, "system": "celonis-task-mining", "action": "edit_users"}
		body, err := json.Marshal(check)
		if err != nil {
			t.Fatal(err)
		}
		code, raw := post(t, base+"/v1/check", "", string(body))
		if wantCode := map[bool]int{true: http.StatusOK, false: http.StatusBadRequest}[valid]; code != wantCode {
			t.Errorf("/v1/check, subject %q (%d bytes): %d %s, want %d", id, len(id), code, raw, wantCode)
		}
		input, err := json.Marshal(map[string]any{"input": check})
		if err != nil {
			t.Fatal(err)
		}
		code, raw = post(t, base+"/v1/data/permatrix/decision", "", string(input))
		var got struct {
			Result struct {
				Allow  *bool    `json:"allow"`
				Errors []string `json:"errors"`
			} `json:"result"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.Result.Allow == nil {
			t.Errorf("Data API, subject %q: %d %s", id, code, raw)
			continue
		}
		refused := len(got.Result.Errors) > 0
		if refused == valid || (refused && *got.Result.Allow) {
			t.Errorf("Data API, subject %q (%d bytes, valid %v): %s", id, len(id), valid, raw)
		}
		if refused && (len(got.Result.Errors) != 1 || got.Result.Errors[0] != "subject must be a string of 1 to 256 bytes without control characters") {
			t.Errorf("Data API, subject %q: errors %q", id, got.Result.Errors)
		}
	}
}
