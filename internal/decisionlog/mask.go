package decisionlog

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// defaultMaskDecision is OPA's default mask_decision.
const defaultMaskDecision = "/system/log/mask"

// MaskModuleName is the file name errors about the mask list's module name.
const MaskModuleName = "decision-log-mask.rego"

// setMask checks the mask list and where its rule goes: the mask_decision
// of cfg, OPA's /system/log/mask by default.
func (l *Logger) setMask(cfg map[string]any, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	for _, p := range paths {
		if err := checkMaskPath(p); err != nil {
			return err
		}
	}
	at := defaultMaskDecision
	if v, ok := cfg["mask_decision"]; ok {
		s, isString := v.(string)
		if !isString {
			return fmt.Errorf("decision_logs.mask_decision: want a path such as %s", defaultMaskDecision)
		}
		at = s
	}
	parts := strings.Split(strings.Trim(at, "/"), "/")
	if len(parts) < 2 {
		return fmt.Errorf("decision_logs.mask_decision %q: the mask list needs a rule inside a package, e.g. %s", at, defaultMaskDecision)
	}
	for _, p := range parts {
		if !ast.IsVarCompatibleString(p) || ast.IsKeyword(p) {
			return fmt.Errorf("decision_logs.mask_decision %q: with a mask list, every segment must be a Rego name (%q is not)", at, p)
		}
	}
	l.mask, l.maskAt = paths, strings.Join(parts, "/")
	return nil
}

// checkMaskPath accepts what OPA's mask rules erase: a JSON pointer into
// the input or the result.
func checkMaskPath(p string) error {
	// RFC 6901: "~" is written "~0" and "/" inside a key "~1"; any other
	// escape is no pointer, and what OPA would make of it is undefined.
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf("decision log mask %q: not a JSON pointer: ~ must be followed by 0 or 1 (~0 for ~, ~1 for / inside a key)", p)
		}
	}
	for _, root := range []string{"/input", "/result"} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return nil
		}
	}
	return fmt.Errorf("decision log mask %q: want a JSON pointer under /input or /result, e.g. /input/context/password", p)
}

// MaskModule is the Rego module of the mask list — mask rules in OPA's
// form, one per path — for the engine to compile with every bundle
// (opa.Engine.AddModule); ok is false without a list. A bundle's own mask
// policy at the same path must then be multi-value (`mask contains …`), as
// OPA's documentation writes it, so that both apply.
func (l *Logger) MaskModule() (name, source string, ok bool) {
	if len(l.mask) == 0 {
		return "", "", false
	}
	parts := strings.Split(l.maskAt, "/")
	var b strings.Builder
	b.WriteString("# The decision log's mask list (server.decision_log_mask, --decision-log-mask).\n")
	fmt.Fprintf(&b, "package %s\n\n", strings.Join(parts[:len(parts)-1], "."))
	for _, p := range l.mask {
		lit, _ := json.Marshal(p)
		fmt.Fprintf(&b, "%s contains %s\n", parts[len(parts)-1], lit)
	}
	return MaskModuleName, b.String(), true
}
