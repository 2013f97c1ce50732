package decisionlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/permatrix/permatrix"
)

// Paths of the decisions permatrix logs, as OPA writes them (the data path
// without "data.", slash-separated).
const (
	// CheckPath is a check's: /v1/check, each batch item, forward-auth and
	// ext_authz, all decided by data.permatrix.decision.
	CheckPath = "permatrix/decision"
)

// BundleName is the name decisions give serve's own policy bundle
// (--bundle, the embedded one) in "bundles"; the bundle of a bundles
// section is named as the section names it (pdp.Service.BundleName).
const BundleName = "permatrix"

// Entry is one logged decision in OPA's decision-log schema (EventV1 of
// github.com/open-policy-agent/opa/v1/plugins/logs), so that log pipelines
// built for OPA read it unchanged. The fields OPA has no use for in
// permatrix (intermediate results, traces) are left out; permatrix's
// own data, the store revision, is under "custom", where OPA puts custom
// data.
type Entry struct {
	DecisionID string `json:"decision_id"`
	// BatchDecisionID is shared by the checks of one /v1/check/batch.
	BatchDecisionID string `json:"batch_decision_id,omitempty"`
	// Labels identify the decision point: OPA's id and version, and the
	// configured labels. Set by the logger.
	Labels map[string]string `json:"labels,omitempty"`
	// Bundles is the active bundle's revision, under BundleName.
	Bundles map[string]BundleInfo `json:"bundles,omitempty"`
	Path    string                `json:"path,omitempty"`
	// Query is the Query API's query (Path is then empty).
	Query string `json:"query,omitempty"`
	// Input is the policy input: Check.Input() for a check, the Data API's
	// input as given. Masked paths are gone (see Erased and Masked).
	Input any `json:"input,omitempty"`
	// Result is the decision: a permatrix.Decision for a check, the
	// document for the Data API.
	Result any `json:"result,omitempty"`
	// Erased and Masked list the JSON pointers the mask policy removed or
	// replaced (OPA's "erased" and "masked").
	Erased []string `json:"erased,omitempty"`
	Masked []string `json:"masked,omitempty"`
	// RequestedBy is the client's address.
	RequestedBy string    `json:"requested_by,omitempty"`
	Timestamp   time.Time `json:"timestamp"`
	// Metrics are OPA-style metrics, e.g. timer_rego_query_eval_ns.
	Metrics map[string]any `json:"metrics,omitempty"`
	// RequestID numbers the HTTP (or gRPC) request within this process.
	RequestID uint64 `json:"req_id,omitempty"`
	// RequestContext holds the request headers decision_logs.request_context
	// names.
	RequestContext *RequestContext `json:"request_context,omitempty"`
	// TraceID and SpanID name the request's span when distributed
	// tracing is on (OPA's trace_id and span_id, hex).
	TraceID string  `json:"trace_id,omitempty"`
	SpanID  string  `json:"span_id,omitempty"`
	Custom  *Custom `json:"custom,omitempty"`
}

// BundleInfo is one bundle's entry in Entry.Bundles.
type BundleInfo struct {
	Revision string `json:"revision,omitempty"`
}

// RequestContext is OPA's request_context.
type RequestContext struct {
	HTTP *struct {
		Headers map[string][]string `json:"headers,omitempty"`
	} `json:"http,omitempty"`
}

// Custom is permatrix's data in an entry (OPA's "custom").
type Custom struct {
	// StoreRevision is the assignment-store revision the decision read.
	StoreRevision uint64 `json:"store_revision"`
}

// TimerEval is the metric of the evaluation's duration, OPA's name.
const TimerEval = "timer_rego_query_eval_ns"

// BundleRevision is the revision of the bundle that decided: the one
// bundle an entry names, whatever its name (BundleName, or the bundles
// section's).
func (e *Entry) BundleRevision() string {
	if b, ok := e.Bundles[BundleName]; ok || len(e.Bundles) != 1 {
		return b.Revision
	}
	for _, b := range e.Bundles {
		return b.Revision
	}
	return ""
}

// StoreRevision is the store revision the decision read (0 if unknown).
func (e *Entry) StoreRevision() uint64 {
	if e.Custom == nil {
		return 0
	}
	return e.Custom.StoreRevision
}

// IsCheck reports whether the entry is a check (CheckPath) with an input.
func (e *Entry) IsCheck() bool { return e.Path == CheckPath && e.Input != nil }

// Check reads a check entry's input back as the check.
func (e *Entry) Check() (permatrix.Check, error) {
	in, ok := e.Input.(map[string]any)
	if !ok {
		return permatrix.Check{}, fmt.Errorf("decision %s: the input is not an object", e.DecisionID)
	}
	return permatrix.CheckOf(in)
}

// Decision reads a check entry's result back as the decision.
func (e *Entry) Decision() (*permatrix.Decision, error) {
	raw, err := json.Marshal(e.Result)
	if err != nil {
		return nil, err
	}
	var d struct {
		permatrix.Decision
		Allow *bool `json:"allow"`
	}
	if err := jsonv2.Unmarshal(raw, &d); err != nil || d.Allow == nil {
		return nil, fmt.Errorf("decision %s: the logged result has no boolean allow", e.DecisionID)
	}
	d.Decision.Allow = *d.Allow
	return &d.Decision, nil
}

// UnmarshalJSON reads an entry, and also the lines of permatrix's decision
// log before it took OPA's schema (store_revision, bundle_revision and
// duration_ns at the top level), so that `permatrix replay` reads old logs.
// Keys match exactly (encoding/json/v2): "Input" is not the input, as in
// OPA's reader and the policies, so an edited line cannot have one input
// read by one tool and another by the next.
func (e *Entry) UnmarshalJSON(b []byte) error {
	type plain Entry
	var x struct {
		plain
		LegacyStore    *uint64 `json:"store_revision"`
		LegacyBundle   *string `json:"bundle_revision"`
		LegacyDuration *int64  `json:"duration_ns"`
	}
	if err := jsonv2.Unmarshal(b, &x); err != nil {
		return err
	}
	*e = Entry(x.plain)
	if x.LegacyStore != nil && e.Custom == nil {
		e.Custom = &Custom{StoreRevision: *x.LegacyStore}
	}
	if x.LegacyBundle != nil && e.Bundles == nil {
		e.Bundles = map[string]BundleInfo{BundleName: {Revision: *x.LegacyBundle}}
	}
	if x.LegacyDuration != nil && e.Metrics == nil {
		e.Metrics = map[string]any{TimerEval: float64(*x.LegacyDuration)}
	}
	return nil
}

// MaxLine is the longest log line Read accepts.
const MaxLine = 64 << 20

// Read decodes every entry of a decision log (JSON lines; blank lines,
// also of spaces alone, are skipped). An error names the line. A line with
// a key twice in one object (at any depth) or with invalid UTF-8 is
// refused: which of two inputs was decided is not for the reader to guess.
func Read(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue // a blank line, spaces and all
		}
		v, err := jsontext.NewDecoder(bytes.NewReader(line)).ReadValue()
		if err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		if k := v.Kind(); k != '{' {
			return out, fmt.Errorf("line %d: a logged decision is a JSON object, not %s", n, kindName(k))
		}
		var e Entry
		if err := jsonv2.Unmarshal(line, &e); err != nil {
			return out, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return out, fmt.Errorf("line %d is over %d bytes", n+1, MaxLine)
		}
		return out, err
	}
	return out, nil
}

// kindName names a JSON value's kind (jsontext.Kind) for an error.
func kindName(k jsontext.Kind) string {
	switch k {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	}
	return "null"
}
