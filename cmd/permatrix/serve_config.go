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
// labels. OPA's status and distributed_tracing sections of the file, if
// any, are shown as OPA's /v1/config shows them: as configured (neither
// holds a secret: a TLS key is named by its file's path), their URLs
// redacted all the same.
func effectiveConfig(flags *pflag.FlagSet, file *config.File) map[string]any {
	settings := map[string]any{}
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || secretFlag(f.Name) {
			return
		}
		settings[f.Name] = flagValue(f)
	})
	out := map[string]any{"permatrix": settings}
	if file != nil {
		for name, raw := range map[string][]byte{"status": file.Status, "distributed_tracing": file.DistributedTracing} {
			var section map[string]any
			if raw != nil && json.Unmarshal(raw, &section) == nil {
				for k, v := range section {
					if s, ok := v.(string); ok {
						section[k] = redact.URL(s)
					}
				}
				out[name] = section
			}
		}
	}
	return out
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
