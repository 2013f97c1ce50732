package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// OPA's REST API (docs/opa-api.md): the Data API (GET/POST /v1/data, POST
// /v0/data, POST /), the Query, Compile and Policy APIs, /v1/status and
// /v1/config, answering as stock `opa run --server` does — its parameters,
// its response shapes, its error envelope {"code","message","errors"} —
// over permatrix's policies and store. Read-only: OPA's writes (PUT/PATCH/
// DELETE /v1/data, PUT/DELETE /v1/policies) are not served; the store is
// written through permatrix's own API.
//
// Without the admin token only the policy entrypoints are readable (the
// Data API's paths the bundle annotates `entrypoint: true`, and POST /
// when the default decision is one); everything that reads beyond them,
// shows policy source or configuration, or traces an evaluation needs it.

// DefaultDecision is the default of Config.DefaultDecision: POST / answers
// whether a check object is allowed.
const DefaultDecision = "/permatrix/allow"

// defaultBundleName names serve's own bundle (--bundle, the embedded one)
// in OPA's per-bundle reports (Config.BundleName).
const defaultBundleName = "permatrix"

// DecisionPath parses a default decision ("/permatrix/allow" or
// "permatrix/allow", as OPA's default_decision) into its path segments.
func DecisionPath(s string) ([]string, error) {
	t := strings.Trim(strings.TrimSpace(s), "/")
	if t == "" {
		return nil, fmt.Errorf("default decision %q: want a path into data such as %s", s, DefaultDecision)
	}
	segs := strings.Split(t, "/")
	for _, seg := range segs {
		if seg == "" {
			return nil, fmt.Errorf("default decision %q: empty path segment", s)
		}
	}
	return segs, nil
}

// opaPaths are the paths of OPA's REST API: their errors are OPA's envelope.
var opaPaths = []string{"/v0/data", "/v1/data", "/v1/query", "/v1/compile", "/v1/policies", "/v1/status", "/v1/config"}

// isOPAPath reports whether a request path belongs to OPA's REST API.
func isOPAPath(p string) bool {
	if p == "/" {
		return true
	}
	for _, prefix := range opaPaths {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// opaErrorBody is OPA's error envelope (its types.ErrorV1).
type opaErrorBody struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Errors  []error `json:"errors,omitempty"`
}

// opaCodeOf names permatrix's error codes in OPA's vocabulary where it has
// a word for them; the others keep permatrix's.
var opaCodeOf = map[string]string{
	permatrix.EINVALID:      opa.CodeInvalidParameter,
	permatrix.EUNAUTHORIZED: "unauthorized",
	permatrix.ENOTFOUND:     opa.CodeResourceNotFound,
	permatrix.EINTERNAL:     opa.CodeInternal,
}

// opaStatusOf is the status of an OPA API error code.
var opaStatusOf = map[string]int{
	opa.CodeInvalidParameter:  http.StatusBadRequest,
	opa.CodeUndefinedDocument: http.StatusNotFound,
	opa.CodeResourceNotFound:  http.StatusNotFound,
	opa.CodeInternal:          http.StatusInternalServerError,
}

// opaError is the status and OPA envelope of err (toErrorDetail's status).
func opaError(err error) (int, opaErrorBody) {
	status, d := toErrorDetail(err)
	body := opaErrorBody{Code: d.Code, Message: d.Message}
	var ae *opa.APIError
	if errors.As(err, &ae) {
		body.Errors = ae.Errors
	} else if code, ok := opaCodeOf[d.Code]; ok {
		body.Code = code
	}
	return status, body
}

// writeOPAError writes OPA's envelope as its server does: indented, one line
// feed after.
func writeOPAError(c echo.Context, status int, body opaErrorBody) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(body); err != nil {
		buf.Reset()
		_ = enc.Encode(opaErrorBody{Code: body.Code, Message: body.Message})
	}
	return c.Blob(status, echo.MIMEApplicationJSON, buf.Bytes())
}

// opaJSON writes an OPA API answer, indented only with ?pretty (Echo's
// c.JSON would indent for ?pretty=false too).
func opaJSON(c echo.Context, v any, pretty bool) error {
	indent := ""
	if pretty {
		indent = "  "
	}
	return c.JSONPretty(http.StatusOK, v, indent)
}

// boolParam reads a flag parameter as OPA's server does: given without a
// value, or with any value "true" (in any case).
func boolParam(c echo.Context, name string) bool {
	vs, ok := c.QueryParams()[name]
	if !ok {
		return false
	}
	if len(vs) == 1 && vs[0] == "" {
		return true
	}
	for _, v := range vs {
		if strings.EqualFold(v, "true") {
			return true
		}
	}
	return false
}

// evalOptions reads ?explain, ?pretty, ?metrics, ?instrument and
// ?strict-builtin-errors as OPA's server does (an unknown explain mode is
// no explanation).
func evalOptions(c echo.Context) opa.EvalOptions {
	o := opa.EvalOptions{
		Pretty: boolParam(c, "pretty"), Metrics: boolParam(c, "metrics"), Instrument: boolParam(c, "instrument"),
		StrictBuiltinErrors: boolParam(c, "strict-builtin-errors"),
	}
	for _, mode := range c.QueryParams()["explain"] {
		switch mode {
		case opa.ExplainNotes, opa.ExplainFails, opa.ExplainFull, opa.ExplainDebug:
			o.Explain = mode
			return o
		}
	}
	return o
}

// activePolicy is the active policy, or 503.
func (s *Server) activePolicy() (*opa.Policy, error) {
	p := s.svc.Policy()
	if p == nil {
		return nil, permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	return p, nil
}

// mayEvaluate lets a Data API evaluation of path through: anyone for a
// policy entrypoint, else only the admin token; an explanation (a trace of
// the policy's rules and the data they read) needs the token too.
func (s *Server) mayEvaluate(c echo.Context, p *opa.Policy, path []string, o opa.EvalOptions) error {
	if !p.IsEntrypoint(path) {
		if err := s.adminToken(c); err != nil {
			return permatrix.Errorf(permatrix.EUNAUTHORIZED, "without the admin token only the policy entrypoints are readable (%s); anything else needs Authorization: Bearer <admin token>",
				strings.Join(p.Entrypoints(), ", "))
		}
		if err := refuseActorRead(c); err != nil {
			return err
		}
	}
	if o.Explain != opa.ExplainOff {
		if err := s.adminToken(c); err != nil {
			return permatrix.Errorf(permatrix.EUNAUTHORIZED, "explain=%s traces the policy's rules and the data they read: it needs Authorization: Bearer <admin token>", o.Explain)
		}
		if err := refuseActorRead(c); err != nil {
			return err
		}
	}
	return nil
}

// verdictPath is the write verdict's package: data.permatrix.admin.
var verdictPath = []string{"permatrix", "admin"}

// placeForVerdict takes a place among the permission listings' for an
// evaluation of the write verdict (a path in data.permatrix.admin: the
// entrypoint data.permatrix.admin.verdict and documents inside it) without
// the admin token, and answers how to give it back. A membership's verdict
// judges every holding of the group: with a group of 20,000 assignments
// one such request took 2–3 s of CPU and 560 MB. Checks (data.permatrix.
// allow, .decision) and the operator's evaluations take none.
func (s *Server) placeForVerdict(c echo.Context, path []string) (release func(), err error) {
	if len(path) < len(verdictPath) || !slices.Equal(path[:len(verdictPath)], verdictPath) {
		return func() {}, nil
	}
	if token, ok := bearer(c); ok && s.isAdminToken(token) {
		return func() {}, nil
	}
	if err := s.verdicts.take(c); err != nil {
		return nil, err
	}
	return s.verdicts.release, nil
}

// inputBound bounds the Data API's input: maxInputValues without the
// admin token; with it, the operator's input is bounded by --body-limit
// only, as in stock OPA.
func (s *Server) inputBound(c echo.Context) valueBound {
	// Not adminToken, which asks for the token (WWW-Authenticate) on what
	// is answered without it.
	if token, ok := bearer(c); ok && s.isAdminToken(token) {
		return nil
	}
	return &inputValues{max: maxInputValues}
}

// refuseYAML answers 415 for a YAML body, which stock OPA reads and
// permatrix does not (one strict JSON decoder reads every body).
func refuseYAML(c echo.Context) error {
	if strings.Contains(c.Request().Header.Get(echo.HeaderContentType), "yaml") {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, "YAML bodies are not supported: send JSON")
	}
	return nil
}

// evaluationFailed passes OPA API errors, unavailability and the client's
// own cancellation through, and turns anything else (a store fault) into
// a logged 500 that says no more.
func (s *Server) evaluationFailed(c echo.Context, err error, what string) error {
	var ae *opa.APIError
	switch {
	case errors.As(err, &ae), permatrix.ErrorCode(err) == permatrix.EUNAVAILABLE:
		return err
	case c.Request().Context().Err() != nil:
		return c.Request().Context().Err()
	}
	s.log.Error(what+" failed", "err", err, "path", c.Request().URL.Path)
	return &opa.APIError{Code: opa.CodeInternal, Message: "error(s) occurred while evaluating query"}
}

// checkToken is the consistency token a check carries as its own
// min_revision (a key of permatrix.Check, read as /v1/check reads it) when
// the input of a policy entrypoint is a check object — also on a path
// holding an entrypoint (data.permatrix, data), whose answer holds the
// entrypoint's decision (opa.Policy.DecidesAt): a client sending one
// check object to /v1/check and to the Data API gets the same
// read-your-writes from both. It is 0 without one, and for one that is no
// whole number as written (1.0, -1, "5"): the policies' errors name those.
// The request's own token (the body's beside the input, the parameter or
// the header) and this one are both waited for: the later wins.
func checkToken(p *opa.Policy, path []string, input *any) uint64 {
	if input == nil || !p.DecidesAt(path) {
		return 0
	}
	check, _ := (*input).(map[string]any)
	n, _ := check["min_revision"].(json.Number)
	min, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		return 0
	}
	return min
}

// dataRequest is the body of POST /v1/data/{path}: OPA's free-form input
// (absent or null: no input) and permatrix's consistency token.
type dataRequest struct {
	Input       *any   `json:"input"`
	MinRevision uint64 `json:"min_revision,omitempty"`
}

// dataResponse is OPA's Data API answer (its types.DataResponseV1).
type dataResponse struct {
	DecisionID  string          `json:"decision_id,omitempty"`
	Provenance  *provenance     `json:"provenance,omitempty"`
	Explanation json.RawMessage `json:"explanation,omitempty"`
	Metrics     map[string]any  `json:"metrics,omitempty"`
	Result      *any            `json:"result,omitempty"`
	Warning     *opaWarning     `json:"warning,omitempty"`
}

type opaWarning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// GET|POST /v1/data/{path}: OPA's Data API. GET takes the input as the
// input parameter (JSON), POST in the body's "input".
func (s *Server) dataV1(c echo.Context) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	path, err := dataPath(c.Request().URL.EscapedPath(), "/v1/data")
	if err != nil {
		return err
	}
	o := evalOptions(c)
	if err := s.mayEvaluate(c, p, path, o); err != nil {
		return err
	}
	var req dataRequest
	post := c.Request().Method == http.MethodPost
	if post {
		if err := refuseYAML(c); err != nil {
			return err
		}
		body, err := readBody(c)
		if err != nil {
			return err
		}
		// An empty body is no input, as in stock OPA, and so is a body of
		// JSON's null (OPA decodes it into its request as nothing).
		if !blank(body) && string(bytes.Trim(body, " \t\r\n")) != "null" {
			if err := decodeJSONWithin(body, &req, s.inputBound(c)); err != nil {
				return err
			}
		}
	} else if vs := c.QueryParams()["input"]; len(vs) > 0 {
		v, err := decodeValue([]byte(vs[len(vs)-1]), "input", s.inputBound(c))
		if err != nil {
			return permatrix.Errorf(permatrix.EINVALID, "parameter contains malformed input document: %s", permatrix.ErrorMessage(err))
		}
		req.Input = &v
	}
	min, err := minRevision(c, req.MinRevision)
	if err != nil {
		return err
	}
	min = max(min, checkToken(p, path, req.Input))
	release, err := s.placeForVerdict(c, path)
	if err != nil {
		return err
	}
	defer release()
	d, err := s.svc.Data(c.Request().Context(), p, pdp.DataQuery{Path: path, Input: req.Input, MinRevision: min, Options: o})
	if err != nil {
		return s.evaluationFailed(c, err, "data API evaluation")
	}
	resp := dataResponse{DecisionID: d.DecisionID, Metrics: d.Metrics, Explanation: d.Explanation}
	if boolParam(c, "provenance") {
		resp.Provenance = s.provenance(p)
	}
	if d.Defined {
		r := d.Result
		resp.Result = &r
	}
	if post && req.Input == nil {
		resp.Warning = &opaWarning{Code: "api_usage_warning", Message: "'input' key missing from the request"}
	}
	return opaJSON(c, resp, o.Pretty)
}

// POST /v0/data/{path}: OPA's v0 Data API. The body is the input (any JSON
// value; an empty body is null) and the answer the bare document, or 404
// undefined_document.
func (s *Server) dataV0(c echo.Context) error {
	path, err := dataPath(c.Request().URL.EscapedPath(), "/v0/data")
	if err != nil {
		return err
	}
	return s.v0(c, path)
}

// POST /: the default decision (Config.DefaultDecision), with v0's
// semantics, as OPA's default_decision.
func (s *Server) defaultDecision(c echo.Context) error { return s.v0(c, s.defaultPath) }

func (s *Server) v0(c echo.Context, path []string) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	if err := s.mayEvaluate(c, p, path, opa.EvalOptions{}); err != nil {
		return err
	}
	if err := refuseYAML(c); err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var input any
	if !blank(body) {
		if input, err = decodeValue(body, "", s.inputBound(c)); err != nil {
			return err
		}
	}
	min, err := minRevision(c, 0)
	if err != nil {
		return err
	}
	min = max(min, checkToken(p, path, &input))
	release, err := s.placeForVerdict(c, path)
	if err != nil {
		return err
	}
	defer release()
	d, err := s.svc.Data(c.Request().Context(), p, pdp.DataQuery{Path: path, Input: &input, MinRevision: min})
	if err != nil {
		return s.evaluationFailed(c, err, "data API evaluation")
	}
	if !d.Defined {
		return p.Undefined(path)
	}
	return opaJSON(c, d.Result, boolParam(c, "pretty"))
}

// dataPath splits the escaped request path below prefix into unescaped
// segments, so that an escaped slash stays inside its segment.
func dataPath(escaped, prefix string) ([]string, error) {
	rest := strings.TrimPrefix(escaped, prefix)
	var path []string
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" {
			continue
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, permatrix.Errorf(permatrix.EINVALID, "malformed path segment %q: %v", seg, err)
		}
		path = append(path, u)
	}
	return path, nil
}

// queryRequest is the body of POST /v1/query.
type queryRequest struct {
	Query string `json:"query"`
	Input *any   `json:"input"`
}

// queryResponse is OPA's Query API answer (its types.QueryResponseV1).
type queryResponse struct {
	Explanation json.RawMessage  `json:"explanation,omitempty"`
	Metrics     map[string]any   `json:"metrics,omitempty"`
	Result      []map[string]any `json:"result,omitempty"`
}

// GET /v1/query?q=…: OPA's Query API, any Rego query without input
// (operator only).
func (s *Server) queryGet(c echo.Context) error {
	qs := c.QueryParams()["q"]
	if len(qs) == 0 {
		return &opa.APIError{Code: opa.CodeInvalidParameter, Message: "missing parameter 'q'"}
	}
	return s.query(c, qs[len(qs)-1], nil)
}

// POST /v1/query: OPA's Query API, {"query", "input"} (operator only).
func (s *Server) queryPost(c echo.Context) error {
	var req queryRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	return s.query(c, req.Query, req.Input)
}

func (s *Server) query(c echo.Context, query string, input *any) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	min, err := minRevision(c, 0)
	if err != nil {
		return err
	}
	o := evalOptions(c)
	d, err := s.svc.AdhocQuery(c.Request().Context(), p, query, input, o, min)
	if err != nil {
		return s.evaluationFailed(c, err, "query API evaluation")
	}
	bindings, _ := d.Result.([]map[string]any)
	return opaJSON(c, queryResponse{Explanation: d.Explanation, Metrics: d.Metrics, Result: bindings}, o.Pretty)
}

// compileRequest is the body of POST /v1/compile (OPA's
// types.CompileRequestV1).
type compileRequest struct {
	Input    *any      `json:"input"`
	Query    string    `json:"query"`
	Unknowns *[]string `json:"unknowns"`
	Options  struct {
		DisableInlining          []string `json:"disableInlining"`
		NondeterministicBuiltins bool     `json:"nondeterministicBuiltins"`
	} `json:"options"`
}

// compileResponse is OPA's Compile API answer.
type compileResponse struct {
	Result      any             `json:"result"`
	Explanation json.RawMessage `json:"explanation,omitempty"`
	Metrics     map[string]any  `json:"metrics,omitempty"`
}

// POST /v1/compile: OPA's Compile API, partial evaluation (operator only).
func (s *Server) compile(c echo.Context) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	var req compileRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	r := opa.CompileRequest{Query: req.Query, Input: req.Input, DisableInlining: req.Options.DisableInlining,
		NondeterministicBuiltins: req.Options.NondeterministicBuiltins}
	if req.Unknowns != nil {
		r.Unknowns = append([]string{}, *req.Unknowns...)
	}
	min, err := minRevision(c, 0)
	if err != nil {
		return err
	}
	o := evalOptions(c)
	ev, err := s.svc.Compile(c.Request().Context(), p, r, o, min)
	if err != nil {
		return s.evaluationFailed(c, err, "compile API evaluation")
	}
	return opaJSON(c, compileResponse{Result: ev.Result, Explanation: ev.Explanation, Metrics: ev.Metrics}, o.Pretty)
}

// GET /v1/policies: the active bundle's Rego modules (operator only).
func (s *Server) policies(c echo.Context) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	return opaJSON(c, map[string]any{"result": p.Modules()}, boolParam(c, "pretty"))
}

// GET /v1/policies/{id}: one module (operator only); ids hold slashes.
func (s *Server) policy(c echo.Context) error {
	p, err := s.activePolicy()
	if err != nil {
		return err
	}
	id := strings.TrimPrefix(c.Request().URL.Path, "/v1/policies/")
	m, ok := p.Module(id)
	if !ok {
		return &opa.APIError{Code: opa.CodeResourceNotFound, Message: fmt.Sprintf("storage_not_found_error: policy id %q", id)}
	}
	return opaJSON(c, map[string]any{"result": m}, boolParam(c, "pretty"))
}

// GET /v1/status: OPA's status report as far as it applies — labels, the
// active bundle, and the state of what serves (operator only).
func (s *Server) status(c echo.Context) error {
	bundle := map[string]any{"name": s.cfg.BundleName}
	plugins := map[string]any{}
	state := func(ok bool, notOK string) map[string]any {
		if ok {
			return map[string]any{"state": "OK"}
		}
		return map[string]any{"state": notOK}
	}
	if p := s.svc.Policy(); p != nil {
		bundle["active_revision"] = p.BundleRevision()
		bundle["last_successful_activation"] = p.ActivatedAt.UTC().Format(time.RFC3339Nano)
		plugins["bundle"] = state(true, "")
	} else {
		plugins["bundle"] = state(false, "NOT_READY")
	}
	s.mu.Lock()
	if s.bundleErr != nil {
		bundle["code"] = "bundle_error"
		bundle["message"] = s.bundleErr.Error()
		bundle["last_request"] = s.bundleFail.Format(time.RFC3339Nano)
	}
	s.mu.Unlock()
	st := s.svc.StoreHealth()
	store := state(st.Ready, "ERROR")
	if st.Error != "" {
		store["message"] = st.Error
	}
	plugins["store"] = store
	return opaJSON(c, map[string]any{"result": map[string]any{
		"labels":  s.labels,
		"bundles": map[string]any{s.cfg.BundleName: bundle},
		"plugins": plugins,
	}}, boolParam(c, "pretty"))
}

// GET /v1/config: the effective configuration, secrets removed (operator
// only).
func (s *Server) config(c echo.Context) error {
	result := map[string]any{}
	for k, v := range s.cfg.Effective {
		result[k] = v
	}
	result["default_decision"] = "/" + strings.Join(s.defaultPath, "/")
	result["labels"] = s.labels
	return opaJSON(c, map[string]any{"result": result}, boolParam(c, "pretty"))
}

// provenance is OPA's provenance report (its types.ProvenanceV1): the
// server's build, and the active bundle's revision. opa_version, the
// embedded OPA's, is permatrix's addition.
type provenance struct {
	Version    string                      `json:"version"`
	Vcs        string                      `json:"build_commit"`
	Timestamp  string                      `json:"build_timestamp"`
	Hostname   string                      `json:"build_hostname"`
	Bundles    map[string]provenanceBundle `json:"bundles,omitempty"`
	OPAVersion string                      `json:"opa_version"`
}

type provenanceBundle struct {
	Revision string `json:"revision"`
}

func (s *Server) provenance(p *opa.Policy) *provenance {
	pv := s.build
	pv.Bundles = map[string]provenanceBundle{s.cfg.BundleName: {Revision: p.BundleRevision()}}
	return &pv
}

// buildProvenance reads the binary's build: its version (Config.Version),
// and the commit and time Go recorded.
func buildProvenance(version string) provenance {
	pv := provenance{Version: version, OPAVersion: opa.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				pv.Vcs = s.Value
			case "vcs.time":
				pv.Timestamp = s.Value
			}
		}
	}
	return pv
}
