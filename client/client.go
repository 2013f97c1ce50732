// Package client is the Go client of permatrix's HTTP API: decisions
// (Check, CheckBatch), administration (assignments, group members, custom
// roles, projects, import, export and backup), the system catalogue and
// health.
//
// A Client is safe for concurrent use. Every call takes a context; there are
// no retries (a write is not idempotent: retrying one the server committed
// makes it twice) and no default timeout beyond the context's. Answers are
// read up to a bound (WithMaxResponseBytes), except Export and Backup,
// which stream into the caller's writer.
//
// Errors the server answers are *Error values carrying its code, message and
// HTTP status. *Error unwraps to *permatrix.Error, so both
//
//	var e *client.Error
//	errors.As(err, &e) // e.StatusCode, e.Code, e.Message
//	permatrix.ErrorCode(err) == permatrix.EFORBIDDEN
//
// work. A call refused before anything is sent (an empty id, a batch over
// MaxBatch, a string in the body that is not valid UTF-8, which JSON cannot
// carry) is a *permatrix.Error with code invalid. Transport failures
// (connection refused, a canceled context) are returned as they are,
// wrapped with the request they belong to.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/permatrix/permatrix"
)

// Defaults of a Client.
const (
	// DefaultMaxResponseBytes bounds a JSON answer (a page of 1000
	// assignments, a batch of 1000 decisions and the system catalogue fit
	// with room to spare).
	DefaultMaxResponseBytes = 16 << 20
	// maxErrorBytes bounds the body of an error answer.
	maxErrorBytes = 64 << 10
	// actorHeader names the actor of a write (docs/delegation.md).
	actorHeader = "X-Permatrix-Actor"
)

// Client calls one permatrix server.
type Client struct {
	base        url.URL // http or https; a unix socket's requests go to http://permatrix
	basePath    string  // the base URL's path, escaped, without a trailing slash
	socket      string  // the unix socket's path, if any
	hc          *http.Client
	token       string
	maxResponse int64
	userAgent   string

	readYourWrites bool
	written        atomic.Uint64 // the highest revision a write of this client returned
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc (its Transport, TLS settings,
// proxy, timeouts). With a unix:// base URL its Transport must be an
// *http.Transport (or nil), which is cloned to dial the socket.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends Authorization: Bearer token: the admin token, which the
// administration API requires, or a user's JWT when the server verifies
// them (--identity jwt), whose writes are then made as that user.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithMaxResponseBytes bounds the size of a JSON answer (default
// DefaultMaxResponseBytes); a larger answer is an error, never truncated.
func WithMaxResponseBytes(n int64) Option { return func(c *Client) { c.maxResponse = n } }

// WithUserAgent sets the User-Agent header (default "permatrix-go-client").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithReadYourWrites makes every check ask for a decision at least at the
// highest revision this client's writes have returned (a consistency token,
// min_revision), unless the check asks for a later one. On one server a
// check after a write already sees it; in a fleet (sidecars sharing an etcd
// store, docs/fleet.md) a sidecar waits until it has applied the write.
func WithReadYourWrites() Option { return func(c *Client) { c.readYourWrites = true } }

// New returns a client of the server at baseURL: http://host:port or
// https://host:port (optionally with a path prefix, e.g. behind a proxy),
// or unix:///path/to/permatrix.sock.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("permatrix client: base URL: %w", err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("permatrix client: base URL %q: no user info, query or fragment", baseURL)
	}
	c := &Client{maxResponse: DefaultMaxResponseBytes, userAgent: "permatrix-go-client"}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("permatrix client: base URL %q has no host", baseURL)
		}
		c.base = url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(u.Path, "/")}
		c.basePath = strings.TrimRight(u.EscapedPath(), "/")
	case "unix":
		// unix:///run/permatrix.sock: the path is the socket's.
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("permatrix client: base URL %q: want unix:///absolute/path", baseURL)
		}
		c.socket = u.Path
		c.base = url.URL{Scheme: "http", Host: "permatrix"}
	default:
		return nil, fmt.Errorf("permatrix client: base URL %q: want http://, https:// or unix://", baseURL)
	}
	for _, o := range opts {
		o(c)
	}
	if c.maxResponse <= 0 {
		return nil, errors.New("permatrix client: WithMaxResponseBytes needs a positive size")
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.socket != "" {
		var t *http.Transport
		switch rt := c.hc.Transport.(type) {
		case nil:
			t = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			t = rt.Clone()
		default:
			return nil, fmt.Errorf("permatrix client: a unix socket needs an *http.Transport, got %T", rt)
		}
		socket := c.socket
		t.Proxy = nil
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
		hc := *c.hc
		hc.Transport = t
		c.hc = &hc
	}
	return c, nil
}

// URL is the server's base URL as given to New (unix:// for a socket).
func (c *Client) URL() string {
	if c.socket != "" {
		return "unix://" + c.socket
	}
	return c.base.String()
}

// endpoint is the URL of the path made of segs, each escaped as one path
// segment (an id may hold a slash), with the query q.
func (c *Client) endpoint(q url.Values, segs ...string) string {
	u := c.base
	raw := c.basePath
	for _, s := range segs {
		u.Path += "/" + s
		raw += "/" + url.PathEscape(s)
	}
	u.RawPath = raw
	u.RawQuery = q.Encode()
	return u.String()
}

// request is one call: method, path segments, query, and either a JSON
// value (in) or a raw body.
type request struct {
	method      string
	segs        []string
	query       url.Values
	in          any
	body        io.Reader
	contentType string
	actor       *string // X-Permatrix-Actor, when given
	// failed, when set, reads an error answer's headers before its body
	// becomes the *Error (a chunked import's progress).
	failed func(*http.Response)
}

// send makes the request and returns the response when its status is 2xx,
// else the server's error as *Error (the body read and closed).
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	body := r.body
	if r.in != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.in); err != nil {
			return nil, fmt.Errorf("permatrix client: encoding the %s %s body: %w", r.method, c.pathOf(r.segs), err)
		}
		if err := encodedUTF8(r.in, buf.Bytes()); err != nil {
			return nil, err
		}
		body = &buf
		r.contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.endpoint(r.query, r.segs...), body)
	if err != nil {
		return nil, fmt.Errorf("permatrix client: %w", err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if r.actor != nil {
		req.Header.Set(actorHeader, *r.actor)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("permatrix client: %s %s: %w", r.method, c.pathOf(r.segs), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp)
		if r.failed != nil {
			r.failed(resp)
		}
		return nil, errorOf(resp)
	}
	return resp, nil
}

// call makes the request and decodes its JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	raw, err := readBounded(resp.Body, c.maxResponse)
	if err != nil {
		return fmt.Errorf("permatrix client: %s %s: reading the answer: %w", r.method, c.pathOf(r.segs), err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("permatrix client: %s %s: the answer is not the expected JSON: %w", r.method, c.pathOf(r.segs), err)
	}
	return nil
}

func (c *Client) pathOf(segs []string) string { return "/" + strings.Join(segs, "/") }

// readBounded reads r to the end, failing if it holds more than max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("the answer is over %d bytes (WithMaxResponseBytes)", max)
	}
	return raw, nil
}

// closeBody drains a little of what is left, so that the connection can be
// reused, and closes the body.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	resp.Body.Close()
}

// validUTF8 refuses a body holding a string that is not valid UTF-8,
// before it is sent: JSON cannot carry one, and encoding/json would send
// U+FFFD in place of each bad byte — another id, which two such ids share.
// The server refuses such an id in a path or a header for the same reason.
func validUTF8(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return nil // not JSON at all (a cycle, a channel): the encoder says so
	}
	return encodedUTF8(v, b)
}

// encodedUTF8 is validUTF8 of v encoded as b: encoding/json writes the
// escape \ufffd only for a byte that is not UTF-8 (a real U+FFFD goes as
// itself), so v is walked only to name where when b holds one — and b's
// encoding has already refused a value that refers to itself, which the
// walk would follow for ever.
func encodedUTF8(v any, b []byte) error {
	if !bytes.Contains(b, []byte(`\ufffd`)) {
		return nil
	}
	if at, bad := badUTF8(reflect.ValueOf(v), ""); bad {
		if at == "" {
			at = "the body"
		}
		return permatrix.Errorf(permatrix.EINVALID, "%s is not valid UTF-8: JSON cannot carry it (it would be sent as U+FFFD, another id); nothing was sent", at)
	}
	return nil
}

// badUTF8 finds a string in v that is not valid UTF-8, and where it is
// (a JSON path below at: "scope.id", "permissions[1]").
func badUTF8(v reflect.Value, at string) (string, bool) {
	dot := func(name string) string {
		if at == "" {
			return name
		}
		return at + "." + name
	}
	switch v.Kind() {
	case reflect.String:
		return at, !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badUTF8(v.Elem(), at)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			where := dot(name)
			switch {
			case f.Anonymous && name == "":
				where = at // an embedded struct's fields are the outer object's
			case name == "":
				where = dot(f.Name)
			}
			if w, bad := badUTF8(v.Field(i), where); bad {
				return w, true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // bytes go as base64
		}
		for i := range v.Len() {
			if w, bad := badUTF8(v.Index(i), at+"["+strconv.Itoa(i)+"]"); bad {
				return w, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			name := fmt.Sprint(k.Interface())
			if k.Kind() == reflect.String && !utf8.ValidString(k.String()) {
				return dot("a key"), true
			}
			if w, bad := badUTF8(it.Value(), dot(name)); bad {
				return w, true
			}
		}
	}
	return "", false
}

// required refuses an empty path segment before any request is sent: it
// would address another resource (/v1/assignments/ is the list).
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return permatrix.Errorf(permatrix.EINVALID, "%s is required", fields[i])
		}
	}
	return nil
}

// noteRevision records a revision a write returned, for WithReadYourWrites.
func (c *Client) noteRevision(rev uint64) {
	for {
		cur := c.written.Load()
		if rev <= cur || c.written.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// Revision is the highest store revision this client's writes have
// returned (0 before any): a consistency token to hand on, e.g. to another
// service that checks against another sidecar (permatrix.Check.MinRevision).
func (c *Client) Revision() uint64 { return c.written.Load() }
