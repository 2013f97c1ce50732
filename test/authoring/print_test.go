package authoring_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestServePrints: print() in a policy served by `serve --bundle DIR
// --watch` is written to serve's log at info (as `opa run --server`
// writes it), with its file:line — once a check evaluates it, not for the
// probe decisions of each reload — under the vm evaluator and topdown; a
// policy printing in a loop is bounded to a number of lines, the rest
// counted as dropped.
func TestServePrints(t *testing.T) {
	for _, ev := range []string{"vm", "topdown"} {
		t.Run(ev, func(t *testing.T) {
			dir := demoLayout(t)
			s := serve(t, "--bundle", dir, "--watch", "--watch-debounce", "100ms", "--evaluator", ev)
			write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), strings.Replace(demoPolicy(`{"read"}`),
				"decision := lib.verdict(reasons, missing)",
				"decision := d if {\n\tprint(\"demo decides\", input.action, \"for\", input.subject)\n\td := lib.verdict(reasons, missing)\n}", 1))
			eventually(t, "the edit with print() to be served", func() bool {
				return strings.Contains(s.Logs(), "bundle reloaded") || strings.Contains(s.Logs(), "bundle activated")
			})
			if strings.Contains(s.Logs(), "demo decides") {
				t.Fatalf("the reload's probes printed:\n%s", s.Logs())
			}
			eventually(t, "a check to print", func() bool {
				s.allowed(t, `{"subject":"alice","system":"demo","action":"read"}`)
				return strings.Contains(s.Logs(), "demo decides read for alice")
			})
			var line map[string]any
			for _, l := range strings.Split(s.Logs(), "\n") {
				if strings.Contains(l, "demo decides read for alice") {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatalf("%v: %s", err, l)
					}
					break
				}
			}
			if line["level"] != "INFO" || line["msg"] != "print" || line["location"] != "policies/demo/demo.rego:17" {
				t.Errorf("the print line: %v", line)
			}

			// A print in a loop: bounded.
			write(t, filepath.Join(dir, "policies", "demo", "loop.rego"), "package permatrix.systems.demo\n\nloud if {\n\tsome i in numbers.range(1, 5000)\n\tprint(\"loop\", i)\n\tfalse\n}\n")
			write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), strings.Replace(demoPolicy(`{"read"}`),
				"decision := lib.verdict(reasons, missing)", "decision := lib.verdict(reasons, missing) if not loud", 1))
			eventually(t, "the loop to print", func() bool {
				s.allowed(t, `{"subject":"alice","system":"demo","action":"read"}`)
				return strings.Contains(s.Logs(), `"text":"loop `)
			})
			if n := strings.Count(s.Logs(), `"text":"loop `); n > 200 {
				t.Errorf("%d lines of a print in a loop of 5000", n)
			}
		})
	}
}
