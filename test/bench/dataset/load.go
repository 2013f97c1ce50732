package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Target is a permatrix server and its admin token.
type Target struct {
	URL, Token string
	Client     *http.Client // nil: http.DefaultClient
}

func (t Target) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

// Do sends one admin request with a JSON body (nil: none) and returns the
// status and body.
func (t Target) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// SetupResult is what Setup wrote and how fast.
type SetupResult struct {
	Roles           int     `json:"roles"`
	Projects        int     `json:"projects"`
	Memberships     int     `json:"memberships"`
	Seconds         float64 `json:"seconds"`
	WritesPerSecond float64 `json:"writes_per_second"`
}

// Setup writes what the import builds on through their own endpoints,
// with writers concurrent writers: the custom roles (PUT
// /v1/systems/blueprism/roles/{role}), then the projects (PUT
// /v1/systems/{system}/projects/{id}, each creator getting its role) and
// the groups' members (PUT /v1/groups/{group}/members/{user}). The first
// refused write stops it.
func (s *Set) Setup(ctx context.Context, t Target, writers int) (SetupResult, error) {
	var res SetupResult
	start := time.Now()
	type write struct {
		path string
		body any
	}
	run := func(n int, item func(i int) []write) (int, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var next, done atomic.Int64
		var once sync.Once
		var first error
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= n || ctx.Err() != nil {
						return
					}
					for _, w := range item(i) {
						status, body, err := t.Do(ctx, http.MethodPut, w.path, w.body)
						if err == nil && status != http.StatusOK {
							err = fmt.Errorf("PUT %s: %d %s", w.path, status, bytes.TrimSpace(body))
						}
						if err != nil {
							once.Do(func() { first = err; cancel() })
							return
						}
						done.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return int(done.Load()), first
	}
	var err error
	if res.Roles, err = run(len(s.roles), func(i int) []write {
		r := s.roles[i]
		return []write{{"/v1/systems/" + r.System + "/roles/" + url.PathEscape(r.Name), r}}
	}); err != nil {
		return res, err
	}
	if res.Projects, err = run(s.Projects, func(i int) []write {
		p := s.Project(i)
		return []write{{"/v1/systems/" + p.System + "/projects/" + url.PathEscape(p.ID), p}}
	}); err != nil {
		return res, err
	}
	if res.Memberships, err = run(s.Groups, func(g int) []write {
		var ws []write
		for _, u := range s.Members(g) {
			ws = append(ws, write{fmt.Sprintf("/v1/groups/g%d/members/%s", g, url.PathEscape(u)), nil})
		}
		return ws
	}); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	res.WritesPerSecond = float64(res.Roles+res.Projects+res.Memberships) / res.Seconds
	return res, nil
}

// ImportResult is the answer of POST /v1/import.
type ImportResult struct {
	Imported int    `json:"imported"`
	Revision uint64 `json:"revision"`
	Chunks   int    `json:"chunks"`
}

// Import streams body (NDJSON) to POST /v1/import?chunk=chunk. A refused
// import is an error with the server's answer and, where it says so, how far
// it got (X-Permatrix-Imported).
func Import(ctx context.Context, t Target, chunk int, body io.Reader) (ImportResult, error) {
	var res ImportResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+"/v1/import?chunk="+strconv.Itoa(chunk), body)
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := t.client().Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("import: %d %s (imported before it stopped: %q)", resp.StatusCode, bytes.TrimSpace(b), resp.Header.Get("X-Permatrix-Imported"))
	}
	return res, json.Unmarshal(b, &res)
}
