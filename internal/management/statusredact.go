package management

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/permatrix/permatrix/internal/redact"
)

// OPA's decision-log plugin hands its last upload's error to the status
// plugin itself (status.Lookup, then a channel): there is no seam between
// them. A failed connection's error names the upload's URL, query and all
// (a presigned URL's signature, a token), and the status plugin sent it to
// the control plane as it was. The report passes through the services'
// transport (downloadLimit) on its way out: there, the decision-log
// status's message has the queries of the URLs it names redacted, as a
// bundle URL's are (internal/bundlepoll). The report is otherwise sent as
// the plugin made it.

// isStatusReport says whether req is a status report of this manager's
// status plugin: a POST, not gzipped (a decision-log upload is), to
// /status[/<partition_name>] of a service (statusPath: as OPA's client
// makes it).
func (m *Manager) isStatusReport(req *http.Request) bool {
	suffix := m.statusPath.Load()
	if suffix == nil || req.Method != http.MethodPost || req.Body == nil || req.Header.Get("Content-Encoding") != "" {
		return false
	}
	return strings.HasSuffix(req.URL.Path, *suffix)
}

// redactStatusReport is req with the URLs in its decision_logs message
// redacted (redact.URL); req itself if there are none, or its body is not
// a report (sent as it is).
func redactStatusReport(req *http.Request) (*http.Request, error) {
	raw, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	body := raw
	if redacted, ok := redactDecisionLogsMessage(raw); ok {
		body = redacted
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return out, nil
}

// redactDecisionLogsMessage is the report raw with decision_logs.message's
// URLs redacted, and whether anything was.
func redactDecisionLogsMessage(raw []byte) ([]byte, bool) {
	var report map[string]json.RawMessage
	if json.Unmarshal(raw, &report) != nil || report["decision_logs"] == nil {
		return nil, false
	}
	var logs map[string]json.RawMessage
	if json.Unmarshal(report["decision_logs"], &logs) != nil {
		return nil, false
	}
	var msg string
	if json.Unmarshal(logs["message"], &msg) != nil {
		return nil, false
	}
	shown := redact.Text(msg)
	if shown == msg {
		return nil, false
	}
	logs["message"], _ = json.Marshal(shown)
	report["decision_logs"], _ = json.Marshal(logs)
	out, err := json.Marshal(report)
	return out, err == nil
}
