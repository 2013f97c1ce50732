package http_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	permhttp "github.com/permatrix/permatrix/internal/http"
)

// listen starts the real server (newDocTestServer) on a loopback port and
// returns its host:port.
func listen(t *testing.T) string {
	t.Helper()
	return strings.TrimPrefix(serveOn(t, newDocTestServer(t)), "http://")
}

// rawRequest is one request as bytes on the wire.
type rawRequest struct {
	name   string
	method string // for reading the answer (HEAD has no body)
	wire   string
}

// send writes the request on a new connection and reads one answer.
func send(t *testing.T, addr string, r rawRequest) (*http.Response, []byte, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Write in the background: the server may answer (and close) before
	// it has read all of a huge request.
	go func() { _, _ = io.WriteString(conn, r.wire) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func req(method, target string, headers map[string]string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, target)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// hostileRequests is the sweep: malformed wire requests, then every route
// crossed with methods, content types and bodies a client should not send.
func hostileRequests() []rawRequest {
	var out []rawRequest
	add := func(name, method, wire string) { out = append(out, rawRequest{name, method, wire}) }
	json := map[string]string{"Content-Type": "application/json"}
	admin := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + docTestToken}

	// Malformed at the HTTP level: net/http refuses these before any handler.
	for _, target := range []string{"/v1/%zz", "/v1/data/%", "/v1/data/%g0", "/%", "/v1/check%2", "/v1/systems/%%", "/v1/data/a%zzb/%00"} {
		add("bad escape "+target, "GET", req("GET", target, nil, ""))
	}
	add("NUL in request line", "GET", "GET /v1/\x00 HTTP/1.1\r\nHost: a\r\n\r\n")
	add("control char in target", "GET", "GET /v1/\x01x HTTP/1.1\r\nHost: a\r\n\r\n")
	add("space in target", "GET", "GET /v1/a b HTTP/1.1\r\nHost: a\r\n\r\n")
	add("NUL in header value", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n")
	add("NUL in header name", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n")
	add("header without colon", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n")
	add("space before colon", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n")
	add("no Host", "GET", "GET /health HTTP/1.1\r\n\r\n")
	add("two Hosts", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	add("bad Host", "GET", "GET /health HTTP/1.1\r\nHost: a b/\r\n\r\n")
	add("HTTP/9.9", "GET", "GET /health HTTP/9.9\r\nHost: a\r\n\r\n")
	add("FOO/1.1", "GET", "GET /health FOO/1.1\r\nHost: a\r\n\r\n")
	add("HTTP/2 preface", "GET", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	add("bad method token", "GET", "G(T /health HTTP/1.1\r\nHost: a\r\n\r\n")
	add("no target", "GET", "GET\r\nHost: a\r\n\r\n")
	add("absolute target bad", "GET", "GET http://a/%zz HTTP/1.1\r\nHost: a\r\n\r\n")
	add("bad Content-Length", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n")
	add("negative Content-Length", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n")
	add("two Content-Lengths", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}")
	add("unknown transfer coding", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
	add("chunked and length", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n")
	add("bad chunk size", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	add("Expect other", "POST", "POST /v1/check HTTP/1.1\r\nHost: a\r\nExpect: 42-continue\r\nContent-Length: 2\r\n\r\n{}")
	add("Expect other GET", "GET", "GET /health HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n")
	big := strings.Repeat("a", 70<<10)
	add("headers over the limit", "GET", req("GET", "/health", map[string]string{"X-Big": big}, ""))
	add("many headers over the limit", "GET", req("GET", "/v1/systems", manyHeaders(2000), ""))
	add("headers over net/http's limit", "GET", req("GET", "/health", map[string]string{"X-Big": strings.Repeat("b", 2<<20)}, ""))
	add("target over the limit", "GET", req("GET", "/v1/data/"+big, nil, ""))

	// Every route, with methods it does not serve and bodies it should refuse.
	routes := []string{"/v1/check", "/v1/check/batch", "/v1/data", "/v1/data/permatrix/decision", "/v1/data/permatrix/allow",
		"/v1/data/permatrix/admin/verdict", "/v1/data/store", "/v1/data/%00", "/v1/data/a%22b", "/v1/data/systems/blueprism/documents/99",
		"/v1/systems", "/v1/systems/%00", "/v1/systems/blueprism", "/v1/subjects/%00/permissions", "/v1/subjects/alice/permissions?system=%00",
		"/v1/subjects/alice/permissions?system=blueprism&resource_type=process_group&resource_id=%01",
		"/v1/subjects/alice/permissions?resource_type=%00&resource_id=x", "/v1/forward-auth", "/v1/forward-auth/x",
		"/v1/assignments", "/v1/assignments/%00", "/v1/groups/g/members/u", "/v1/groups/%00/members", "/v1/systems/blueprism/roles/r",
		"/v1/systems/blueprism/projects/p", "/v1/import", "/v1/export", "/health", "/health/ready", "/nope", "/v1/nope/%2F",
		"/", "/v0/data", "/v0/data/permatrix/allow", "/v0/data/store", "/v1/query", "/v1/query?q=x%3A%3Dinput", "/v1/compile",
		"/v1/policies", "/v1/policies/%00", "/v1/status", "/v1/config", "/v1/data/permatrix/allow?explain=full&strict-builtin-errors&metrics"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"}
	bodies := []string{"", "{", "null", `"alice"`, "[]", "42", `{"input":"alice"}`, `{"input":[1,{"a":null}]}`, `{"input":1e999}`,
		`{"subject":"\u0000","system":"blueprism","action":"x"}`, `{"subject":1e400}`, "\xff\xfe", `{"checks":[1,"a",null,{}]}`,
		deep(20000), `{"input":` + deep(5000) + `}`, `{"subject":"alice","system":"celonis-task-mining","action":"edit_users","context":{"n":1e309,"d":` + deep(500) + `}}`}
	types := []map[string]string{json, admin, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
		{"Content-Type": "multipart/form-data; boundary=x"}, {}, {"Authorization": "Bearer " + docTestToken, "X-Permatrix-Actor": "a\tb\x80"},
		{"X-Forwarded-User": "alice", "X-Permatrix-System": "\xff", "X-Permatrix-Action": "edit_users"}}
	for i, route := range routes {
		for j, m := range methods {
			for k, b := range bodies {
				// A sample of the cross product, spread over every route,
				// method, body and content type.
				if (i+j+k)%2 != 0 {
					continue
				}
				h := types[(i+j+k)%len(types)]
				add(fmt.Sprintf("%s %s body %d", m, route, k), m, req(m, route, h, b))
			}
		}
	}
	return out
}

// opaAnswer reports whether r goes to OPA's REST API, past net/http's own
// answers (whose envelope is permatrix's: they come before any routing).
func opaAnswer(r rawRequest) bool {
	line, _, _ := strings.Cut(r.wire, "\r\n")
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return false
	}
	u, err := url.ParseRequestURI(f[1])
	return err == nil && permhttp.IsOPAPath(u.Path)
}

func manyHeaders(n int) map[string]string {
	h := map[string]string{}
	for i := range n {
		h[fmt.Sprintf("X-H%d", i)] = strings.Repeat("v", 40)
	}
	return h
}

func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// TestHostileRequests: no request, however malformed, gets a 500, every
// error answer is the JSON envelope, and the server keeps serving.
func TestHostileRequests(t *testing.T) {
	addr := listen(t)
	reqs := hostileRequests()
	if len(reqs) < 1000 {
		t.Fatalf("only %d requests in the sweep", len(reqs))
	}
	statuses := map[int]int{}
	for _, r := range reqs {
		resp, body, err := send(t, addr, r)
		if err != nil {
			t.Errorf("%s: no answer: %v", r.name, err)
			continue
		}
		statuses[resp.StatusCode]++
		// 501 (unknown transfer coding) and 505 (HTTP/9.9) are the
		// answers HTTP prescribes; no other 5xx is one for a bad request.
		if resp.StatusCode >= 500 && resp.StatusCode != 501 && resp.StatusCode != 505 {
			t.Errorf("%s: %d %s", r.name, resp.StatusCode, body)
		}
		if resp.StatusCode < 400 || r.method == http.MethodHead {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: %d with Content-Type %q: %q", r.name, resp.StatusCode, ct, body)
			continue
		}
		if opaAnswer(r) {
			// OPA's REST API answers with OPA's envelope.
			var env map[string]any
			if err := json.Unmarshal(body, &env); err != nil || env["code"] == "" || env["message"] == "" || env["error"] != nil {
				t.Errorf("%s: %d body is not OPA's envelope: %q", r.name, resp.StatusCode, body)
			}
			continue
		}
		var env map[string]map[string]any
		if err := json.Unmarshal(body, &env); err != nil || len(env) != 1 || env["error"]["code"] == "" || env["error"]["message"] == "" {
			t.Errorf("%s: %d body is not the envelope: %q", r.name, resp.StatusCode, body)
		}
	}
	t.Logf("%d hostile requests; statuses %v", len(reqs), statuses)
	resp, body, err := send(t, addr, rawRequest{"health", "GET", req("GET", "/health", nil, "")})
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Fatalf("after the sweep /health: %v %v %s", resp, err, body)
	}
}
