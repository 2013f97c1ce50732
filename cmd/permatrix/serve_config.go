package main

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/permatrix/permatrix/internal/config"
	"github.com/permatrix/permatrix/internal/redact"
	"github.com/spf13/pflag"
)

// effectiveConfig is what GET /v1/config shows of serve's settings: every
// flag's effective value (command line, PERMATRIX_* environment or
// default) under "permatrix", secrets left out and URLs without their
// passwords and query strings. The HTTP server adds default_decision and
// labels. OPA's sections of the file (services, keys, bundles,
// decision_logs, status, distributed_tracing, persistence_directory) are
// shown as OPA's /v1/config shows them (its config.ActiveConfig: a
// service's credentials and a key's key and private_key left out), and
// more strictly: a service's header values are left out too (OPA shows
// them; they often carry a bearer token), and every string that is a URL
// is redacted, as is a bundle's or the decision logs' resource's query.
func effectiveConfig(flags *pflag.FlagSet, file *config.File) map[string]any {
	settings := map[string]any{}
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || secretFlag(f.Name) {
			return
		}
		settings[f.Name] = flagValue(f)
	})
	out := map[string]any{"permatrix": settings}
	if file == nil {
		return out
	}
	var manager map[string]any // services, keys, persistence_directory (labels: the server's)
	if file.OPA != nil && json.Unmarshal(file.OPA, &manager) == nil {
		for _, name := range []string{"services", "keys", "persistence_directory"} {
			if v, ok := manager[name]; ok {
				out[name] = v
			}
		}
	}
	for name, raw := range map[string][]byte{"bundles": file.Bundles, "decision_logs": file.DecisionLogs, "status": file.Status, "distributed_tracing": file.DistributedTracing} {
		var section any
		if raw != nil && json.Unmarshal(raw, &section) == nil {
			out[name] = section
		}
	}
	eachEntry(out["services"], func(service map[string]any) {
		delete(service, "credentials")
		if headers, ok := service["headers"].(map[string]any); ok {
			for k := range headers {
				headers[k] = "redacted"
			}
		}
	})
	eachEntry(out["keys"], func(key map[string]any) {
		delete(key, "key")
		delete(key, "private_key")
	})
	// A resource is a path on its service, and may carry a signature in
	// its query (an Azure SAS token, say): left out as a URL's is.
	redactResource := func(m map[string]any) {
		if r, ok := m["resource"].(string); ok {
			if path, _, found := strings.Cut(r, "?"); found {
				m["resource"] = path + "?redacted"
			}
		}
	}
	eachEntry(out["bundles"], redactResource)
	if logs, ok := out["decision_logs"].(map[string]any); ok {
		redactResource(logs)
	}
	for name, v := range out {
		if name != "permatrix" {
			out[name] = redact.Value(v)
		}
	}
	return out
}

// eachEntry calls f with each object of a section that is a map of them or
// a list of them (OPA takes services both ways).
func eachEntry(section any, f func(map[string]any)) {
	switch section := section.(type) {
	case map[string]any:
		for _, v := range section {
			if m, ok := v.(map[string]any); ok {
				f(m)
			}
		}
	case []any:
		for _, v := range section {
			if m, ok := v.(map[string]any); ok {
				f(m)
			}
		}
	}
}

// secretFlag reports whether a flag holds a secret, or names the file that
// does (the admin token, the etcd password, a verification key that may be
// an HMAC secret): never shown.
func secretFlag(name string) bool {
	for _, word := range []string{"token", "password", "secret"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return name == "verification-key"
}

// flagValue is a flag's value as JSON: booleans and numbers as such, lists
// as lists, URLs redacted.
func flagValue(f *pflag.Flag) any {
	s := f.Value.String()
	switch f.Value.Type() {
	case "bool":
		b, _ := strconv.ParseBool(s)
		return b
	case "int", "int64", "uint64":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	case "stringSlice":
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.GetSlice()
		}
	}
	return redact.URL(s)
}
