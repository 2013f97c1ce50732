package config

import (
	"context"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	opaconfig "github.com/open-policy-agent/opa/v1/config"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/plugins"
	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/permatrix/permatrix/internal/bundlepoll"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/tracing"
)

// OPA's configuration check warns of unknown keys only where it knows a
// section's keys; these specs, from the structs OPA decodes the sections
// into, make it know the nested ones too (credentials, TLS, signing,
// reporting, …). The patterns OPA's own policy already lists are left to
// it (two specs for one pattern would each warn of the other's keys).
func init() {
	core := [][]string{{"services", "*"}, {"keys", "*"}, {"bundles", "*"}, {"bundles", "*", "polling"},
		{"decision_logs"}, {"decision_logs", "reporting"}, {"decision_logs", "request_context"}, {"decision_logs", "request_context", "http"}}
	var specs []opaconfig.ConfigSpec
	specs = structSpecs(specs, reflect.TypeFor[rest.Config](), []string{"services", "*"}, nil)
	specs = structSpecs(specs, reflect.TypeFor[bundleplugin.Source](), []string{"bundles", "*"}, nil)
	specs = structSpecs(specs, reflect.TypeFor[logs.Config](), []string{"decision_logs"}, nil)
	specs = structSpecs(specs, reflect.TypeFor[keys.Config](), []string{"keys", "*"}, nil)
	for _, s := range specs {
		if !slices.ContainsFunc(core, func(c []string) bool { return slices.Equal(c, s.Pattern) }) {
			opaconfig.RegisterConfigSpec(s)
		}
	}
}

// structSpecs is OPA's config.SpecsFromStruct, but for types that refer
// to themselves (OPA's credential plugins do): a type already on the path
// is left open.
func structSpecs(specs []opaconfig.ConfigSpec, t reflect.Type, pattern []string, path []reflect.Type) []opaconfig.ConfigSpec {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || slices.Contains(path, t) || len(path) > 8 {
		return specs
	}
	path = append(path, t)
	spec := opaconfig.ConfigSpec{Pattern: slices.Clone(pattern)}
	var children []func()
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
				walk(ft) // promoted fields, as encoding/json does
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			spec.Keys = append(spec.Keys, name)
			child := slices.Concat(pattern, []string{name})
			switch ft.Kind() {
			case reflect.Map, reflect.Slice, reflect.Array:
				child = append(child, "*")
				ft = ft.Elem()
			}
			children = append(children, func() { specs = structSpecs(specs, ft, child, path) })
		}
	}
	walk(t)
	specs = append(specs, spec)
	for _, c := range children {
		c()
	}
	return specs
}

var unknownOption = regexp.MustCompile(`^unknown configuration option "([^"]*)" encountered$`)

// checkOPA checks the OPA sections with OPA's parsers, and keeps them.
func (f *File) checkOPA(opa map[string]any, probs *Problems) {
	if len(opa) == 0 {
		return
	}
	line := func(path string) int { return f.lines[path] }
	// The values OPA's parser would stop at (before naming unknown keys)
	// are checked here, and left out of what it reads.
	checked := maps.Clone(opa)
	if labels, ok := opa["labels"].(map[string]any); ok {
		for k, v := range labels {
			if _, isString := v.(string); !isString {
				probs.add(line("labels."+k), "labels.%s: a label is a string (quote it)", k)
				delete(checked, "labels")
			}
		}
	} else if _, given := opa["labels"]; given {
		probs.add(line("labels"), "labels: want a mapping of names to strings")
		delete(checked, "labels")
	}
	if v, given := opa["default_decision"]; given {
		if s, isString := v.(string); !isString {
			probs.add(line("default_decision"), "default_decision: want a path such as /permatrix/allow")
			delete(checked, "default_decision")
		} else {
			f.settings = append(f.settings, setting{key: "default_decision", flag: flagOf("default_decision"), value: s, line: line("default_decision")})
		}
	}
	if v, given := opa["persistence_directory"]; given {
		if _, isString := v.(string); !isString {
			probs.add(line("persistence_directory"), "persistence_directory: want a directory")
			delete(checked, "persistence_directory")
		}
	}
	parsed, err := opaconfig.ParseConfig(marshal(checked), "permatrix-config")
	if err != nil {
		probs.add(0, "%v", err)
		return
	}
	for _, w := range parsed.Warnings {
		if m := unknownOption.FindStringSubmatch(w); m != nil && m[1] == "distributed_tracing.exclude_paths" {
			// OPA's parser reads it, OPA's list of the section's keys
			// lacks it (v1.22): a key OPA takes.
			continue
		} else if m != nil {
			probs.add(line(m[1]), "unknown key %q", m[1])
		} else {
			probs.add(0, "%s", w)
		}
	}
	if len(probs.List) > 0 {
		return // the parsers below would repeat them
	}

	manager := map[string]any{}
	for _, k := range opaManagerKeys {
		if v, ok := opa[k]; ok {
			manager[k] = v
		}
	}
	if len(manager) > 0 {
		f.OPA = marshal(manager)
	}
	// Services and keys, as OPA's plugin manager reads them.
	mgr, err := plugins.New(f.OPA, "permatrix-config", inmem.New())
	if err != nil {
		at := "services"
		if strings.Contains(err.Error(), "key") {
			at = "keys"
		}
		probs.add(line(at), "%v", err)
		return
	}
	defer mgr.Stop(context.Background())
	if v, ok := opa["bundles"]; ok {
		f.Bundles = marshal(v)
		if _, err := bundlepoll.ParseConfig(f.Bundles, mgr.Services(), mgr.PublicKeys()); err != nil {
			probs.add(line("bundles"), "%v", err)
		}
	}
	if v, ok := opa["distributed_tracing"]; ok {
		f.DistributedTracing = marshal(v)
		if _, err := tracing.ParseConfig(f.DistributedTracing); err != nil {
			probs.add(line("distributed_tracing"), "%v", err)
		}
	}
	if v, ok := opa["decision_logs"]; ok {
		f.DecisionLogs = marshal(v)
		if err := decisionlog.CheckConfig(f.DecisionLogs, mgr.Services()); err != nil {
			probs.add(line("decision_logs"), "%v", err)
		}
	}
	if v, ok := opa["status"]; ok {
		f.Status = marshal(v)
		if _, err := management.ParseStatusConfig(f.Status, mgr.Services()); err != nil {
			errs := []error{err}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				errs = joined.Unwrap()
			}
			for _, err := range errs {
				// At the key the message names (status.trigger …), if given.
				at := line("status")
				if key, _, _ := strings.Cut(err.Error(), ":"); strings.HasPrefix(key, "status.") {
					if l := line(strings.Fields(key)[0]); l > 0 {
						at = l
					}
				}
				probs.add(at, "%v", err)
			}
		}
	}
}
