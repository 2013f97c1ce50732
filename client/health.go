package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/permatrix/permatrix"
)

// Health is the body of GET /health/ready (and /health).
type Health struct {
	// Status is "ok" or "unavailable".
	Status       string `json:"status"`
	BundleLoaded bool   `json:"bundle_loaded"`
	DBOpen       bool   `json:"db_open"`
	// Store is the store's own report: ready, revision, error.
	Store struct {
		Ready    bool   `json:"ready"`
		Revision uint64 `json:"revision"`
		Error    string `json:"error,omitempty"`
	} `json:"store"`
	// StoreError says why the store's disk refused the last write.
	StoreError string `json:"store_error,omitempty"`
}

// Ready asks GET /health/ready: nil once the server decides and takes
// writes (the bundle loaded, the store open and ready), else an *Error with
// code unavailable whose message says what is not ready. The Health it
// returns is the server's report (nil if none could be read).
func (c *Client) Ready(ctx context.Context) (*Health, error) {
	resp, err := c.hc.Do(c.healthRequest(ctx, "ready"))
	if err != nil {
		return nil, fmt.Errorf("permatrix client: GET /health/ready: %w", err)
	}
	defer closeBody(resp)
	raw, err := readBounded(resp.Body, maxErrorBytes)
	if err != nil {
		return nil, fmt.Errorf("permatrix client: GET /health/ready: %w", err)
	}
	var h Health
	if json.Unmarshal(raw, &h) != nil || h.Status == "" {
		// Not a health report: an error envelope, a proxy's page.
		if resp.StatusCode == http.StatusOK {
			return nil, &Error{Code: permatrix.EUNAVAILABLE, Message: "GET /health/ready answered 200 without a health report", StatusCode: resp.StatusCode}
		}
		return nil, errorFrom(resp, raw)
	}
	if resp.StatusCode == http.StatusOK && h.Status == "ok" {
		return &h, nil
	}
	return &h, &Error{Code: permatrix.EUNAVAILABLE, Message: h.problem(), StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
}

// Live asks GET /health/live: nil while the process serves requests.
func (c *Client) Live(ctx context.Context) error {
	resp, err := c.hc.Do(c.healthRequest(ctx, "live"))
	if err != nil {
		return fmt.Errorf("permatrix client: GET /health/live: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return errorOf(resp)
	}
	return nil
}

func (c *Client) healthRequest(ctx context.Context, which string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(nil, "health", which), nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	return req
}

// problem says what a health report finds not ready.
func (h *Health) problem() string {
	var why []string
	if !h.BundleLoaded {
		why = append(why, "no policy bundle loaded")
	}
	if !h.DBOpen {
		why = append(why, "the store is not open")
	}
	switch {
	case h.StoreError != "":
		why = append(why, "store: "+h.StoreError)
	case h.Store.Error != "":
		why = append(why, "store: "+h.Store.Error)
	case !h.Store.Ready && h.DBOpen:
		why = append(why, "the store is not ready")
	}
	if len(why) == 0 {
		why = append(why, "status "+h.Status)
	}
	return "not ready: " + strings.Join(why, "; ")
}

// Systems returns the system catalogue (GET /v1/systems): every system's
// roles, permissions, actions, scope types and context keys.
func (c *Client) Systems(ctx context.Context) ([]*permatrix.System, error) {
	var out struct {
		Systems []*permatrix.System `json:"systems"`
	}
	err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "systems"}}, &out)
	return out.Systems, err
}

// System returns one system's catalogue entry (code not_found if unknown).
func (c *Client) System(ctx context.Context, id string) (*permatrix.System, error) {
	if err := required("system", id); err != nil {
		return nil, err
	}
	var s permatrix.System
	if err := c.call(ctx, request{method: http.MethodGet, segs: []string{"v1", "systems", id}}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
