package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/permatrix/permatrix"
)

// Error is an error the server answered: its envelope
// {"error": {"code", "message", "details"}} and the HTTP status. It unwraps
// to a *permatrix.Error with the same code, message and details, so
// permatrix.ErrorCode and permatrix.ErrorMessage read it too.
type Error struct {
	// Code is one of permatrix's error codes (permatrix.EINVALID, …).
	Code    string
	Message string
	// Details carries structured reasons (e.g. each violated vendor rule).
	Details []string
	// StatusCode is the HTTP status of the answer; 0 for one item of a
	// batch (the batch itself was answered 200).
	StatusCode int
	// RequestID is the X-Request-Id the server gave the request (its logs
	// carry it).
	RequestID string
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("permatrix: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("permatrix: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Unwrap returns the error as a *permatrix.Error.
func (e *Error) Unwrap() error {
	return &permatrix.Error{Code: e.Code, Message: e.Message, Details: e.Details}
}

// envelope is permatrix's error body; OPA's own {"code", "message"} is
// read too (the Data API of a stock OPA, or a proxy in front of one).
type envelope struct {
	Error *struct {
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Details []string `json:"details"`
	} `json:"error"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorOf reads an error answer (bounded) into an *Error.
func errorOf(resp *http.Response) *Error {
	raw, _ := readBounded(resp.Body, maxErrorBytes)
	return errorFrom(resp, raw)
}

// errorFrom is the *Error of an error answer whose body is raw.
func errorFrom(resp *http.Response, raw []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var env envelope
	if json.Unmarshal(raw, &env) == nil {
		switch {
		case env.Error != nil && env.Error.Code != "":
			e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
			return e
		case env.Code != "" && env.Message != "":
			e.Code, e.Message = env.Code, env.Message
			return e
		}
	}
	// Not permatrix's envelope: a proxy's page, an empty body.
	// Its status says what a caller branching on permatrix.ErrorCode
	// should take it for: the server's own answer of that status.
	e.Code = permatrix.StatusCode(resp.StatusCode)
	text := strings.TrimSpace(string(raw))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	e.Message = fmt.Sprintf("unexpected answer %s", resp.Status)
	if text != "" {
		e.Message += ": " + text
	}
	return e
}
