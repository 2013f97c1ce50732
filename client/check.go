package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/permatrix/permatrix"
)

// MaxBatch is the most checks one CheckBatch may carry (the server's limit).
const MaxBatch = 1000

// Check asks POST /v1/check whether ch.Subject may do ch.Action. A deny is
// a Decision with Allow false (and Missing saying what is lacking), not an
// error; an invalid check (unknown system or action, …) is an *Error with
// code invalid. ch.MinRevision is a consistency token (see
// WithReadYourWrites).
func (c *Client) Check(ctx context.Context, ch permatrix.Check) (*permatrix.Decision, error) {
	ch.MinRevision = c.minRevision(ch.MinRevision)
	var d permatrix.Decision
	if err := c.call(ctx, request{method: http.MethodPost, segs: []string{"v1", "check"}, in: ch}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// BatchResult is one check's answer in a batch: a Decision, or Err (an
// *Error with StatusCode 0) when that check was invalid.
type BatchResult struct {
	Decision *permatrix.Decision
	Err      error
}

// CheckBatch decides up to MaxBatch checks in one request
// (POST /v1/check/batch); the results are in the order of checks. An
// invalid check fails alone, in its result's Err.
func (c *Client) CheckBatch(ctx context.Context, checks []permatrix.Check) ([]BatchResult, error) {
	if len(checks) > MaxBatch {
		return nil, permatrix.Errorf(permatrix.EINVALID, "a batch holds at most %d checks, got %d", MaxBatch, len(checks))
	}
	in := struct {
		Checks []permatrix.Check `json:"checks"`
	}{Checks: make([]permatrix.Check, 0, len(checks))}
	// A check JSON cannot carry (validUTF8) fails alone, as the server
	// fails an invalid one; sent is the index of each check sent.
	results := make([]BatchResult, len(checks))
	sent := make([]int, 0, len(checks))
	for i, ch := range checks {
		if err := validUTF8(ch); err != nil {
			results[i].Err = &Error{Code: permatrix.EINVALID, Message: permatrix.ErrorMessage(err)}
			continue
		}
		ch.MinRevision = c.minRevision(ch.MinRevision)
		in.Checks = append(in.Checks, ch)
		sent = append(sent, i)
	}
	if len(sent) == 0 && len(checks) > 0 {
		return results, nil
	}
	var out struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := c.call(ctx, request{method: http.MethodPost, segs: []string{"v1", "check", "batch"}, in: in}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(sent) {
		return nil, fmt.Errorf("permatrix client: POST /v1/check/batch: %d results for %d checks", len(out.Results), len(sent))
	}
	for j, raw := range out.Results {
		i := sent[j]
		var item struct {
			permatrix.Decision
			Error *struct {
				Code    string   `json:"code"`
				Message string   `json:"message"`
				Details []string `json:"details"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &item); err != nil {
			return nil, fmt.Errorf("permatrix client: POST /v1/check/batch: result %d: %w", i, err)
		}
		if item.Error != nil {
			results[i].Err = &Error{Code: item.Error.Code, Message: item.Error.Message, Details: item.Error.Details}
			continue
		}
		d := item.Decision
		results[i].Decision = &d
	}
	return results, nil
}

// minRevision is the consistency token a check carries: its own, or with
// WithReadYourWrites the latest revision this client wrote if later.
func (c *Client) minRevision(own uint64) uint64 {
	if c.readYourWrites {
		return max(own, c.written.Load())
	}
	return own
}
