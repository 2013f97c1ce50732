// Package config reads permatrix's configuration file (serve --config
// permatrix.yaml, docs/config.md): OPA's vocabulary where OPA has one —
// services, labels, keys, bundles, decision_logs, status,
// default_decision, persistence_directory, distributed_tracing, read and
// checked by OPA's own parsers (distributed_tracing's, internal to OPA, by
// internal/tracing's copy of it) — and
// permatrix's own sections for the rest: server, store, identity, routes.
//
// The file sets serve's flags (Settings: each key of permatrix's sections
// names a flag), so one set of defaults and checks serves flags, the
// environment and the file, in this order of precedence: a flag given on
// the command line, then PERMATRIX_<FLAG>, then the file, then the
// default. Every problem — YAML syntax, an unknown or duplicate key, a
// value of the wrong type, an OPA section OPA refuses — is reported with
// the file and line, all of them at once.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// MaxSize is the largest configuration file read.
const MaxSize = 1 << 20

// File is a read configuration file.
type File struct {
	// Path is the file's name, as given.
	Path string
	// OPA is OPA's configuration (JSON): the OPA sections but bundles and
	// decision_logs (services, labels, keys, persistence_directory), for
	// OPA's plugin manager; nil without any.
	OPA []byte
	// Bundles, DecisionLogs and Status are OPA's sections of those names
	// (JSON), nil when absent.
	Bundles, DecisionLogs, Status []byte
	// DistributedTracing is OPA's distributed_tracing section (JSON, for
	// internal/tracing), nil when absent.
	DistributedTracing []byte

	settings []setting
	lines    map[string]int // dotted path → line, for OPA's messages
}

// setting is one flag the file sets.
type setting struct {
	key, flag, value string
	line             int
}

// Problem is one thing wrong with a file.
type Problem struct {
	Line int
	Msg  string
}

// Problems are every problem of a file; as an error, one per line, each
// FILE:LINE: message.
type Problems struct {
	Path string
	List []Problem
}

func (p *Problems) Error() string {
	var b strings.Builder
	for i, pr := range p.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if pr.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", p.Path, pr.Line, pr.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", p.Path, pr.Msg)
		}
	}
	return b.String()
}

func (p *Problems) add(line int, format string, args ...any) {
	p.List = append(p.List, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *Problems) err() error {
	if len(p.List) == 0 {
		return nil
	}
	p.Sort()
	return p
}

// Sort orders the problems by line.
func (p *Problems) Sort() {
	sort.SliceStable(p.List, func(i, j int) bool { return p.List[i].Line < p.List[j].Line })
}

// OPA's top-level keys permatrix takes, and where they go.
var (
	opaManagerKeys = []string{"services", "labels", "keys", "persistence_directory"}
	opaKeys        = append(slices.Clone(opaManagerKeys), "bundles", "decision_logs", "status", "default_decision", "distributed_tracing")
	// opaUnsupported are OPA's other top-level keys: said so, not ignored.
	opaUnsupported = []string{"discovery", "plugins", "caching", "nd_builtin_cache",
		"storage", "bundle", "default_authorization_decision", "metrics_export"}
)

// Load reads and checks a configuration file: everything but what needs
// the flags (Apply) and the network. With problems (*Problems) it also
// returns what it read, so that Apply can name more.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if _, err := f.Stat(); err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: over %d bytes", path, MaxSize)
	}
	return Parse(path, data)
}

// Parse reads a configuration file's content; name is used in messages.
func Parse(name string, data []byte) (*File, error) {
	file := &File{Path: name, lines: map[string]int{}}
	probs := &Problems{Path: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return file, nil // empty: nothing set
		}
		line, msg := yamlLine(err)
		probs.add(line, "%s", msg)
		return file, probs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		probs.add(extra.Line, "more than one YAML document")
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return file, probs.err()
	}
	if top.Kind != yaml.MappingNode {
		probs.add(top.Line, "want a mapping of sections (server, store, identity, routes, and OPA's services, bundles, decision_logs, …)")
		return file, probs
	}
	opa := map[string]any{}
	for _, kv := range pairs(top, "", probs) {
		key, val := kv[0].Value, kv[1]
		switch {
		case slices.Contains(opaKeys, key) && isNull(val):
			// "key:" with nothing: as if absent, as OPA reads it.
		case slices.Contains(opaKeys, key):
			v, ok := toJSON(val, key, file.lines, probs)
			file.lines[key] = kv[0].Line
			if ok {
				opa[key] = v
			}
		case slices.Contains(opaUnsupported, key):
			probs.add(kv[0].Line, "%s: OPA's %s is not supported by permatrix (docs/config.md lists what is)", key, key)
		case key == "routes":
			file.scalar(key, val, probs)
		case key == "server" || key == "store" || key == "identity":
			file.section(key, val, probs)
		default:
			probs.add(kv[0].Line, "unknown key %q (sections: server, store, identity, routes; OPA's: %s)", key, strings.Join(opaKeys, ", "))
		}
	}
	file.checkOPA(opa, probs)
	file.checkExclusive(probs)
	if file.Bundles != nil {
		for _, st := range file.settings {
			if st.flag == "bundle" || st.flag == "watch" || strings.HasPrefix(st.flag, "verification-") {
				probs.add(st.line, "%s: the bundle comes from the bundles section (verified with keys and bundles.*.signing): give one", st.key)
			}
		}
	}
	return file, probs.err()
}

// exclusive are flags that name one setting two ways (the store's URL and
// its bbolt file, a secret and the file holding it): serve takes one of
// each pair from one source, so a file setting both is refused.
var exclusive = [][2]string{{"store", "db"}, {"admin-token", "admin-token-file"}, {"etcd-password", "etcd-password-file"}}

// checkExclusive adds a problem, at the later key, for a file that sets
// both flags of a pair.
func (f *File) checkExclusive(probs *Problems) {
	for _, pair := range exclusive {
		i := slices.IndexFunc(f.settings, func(s setting) bool { return s.flag == pair[0] })
		j := slices.IndexFunc(f.settings, func(s setting) bool { return s.flag == pair[1] })
		if i < 0 || j < 0 {
			continue
		}
		first, later := f.settings[i], f.settings[j]
		if later.line < first.line {
			first, later = later, first
		}
		probs.add(later.line, "%s: give one of %s and %s", later.key, first.key, later.key)
	}
}

// pairs are a mapping's key and value nodes; duplicate keys, non-scalar
// keys and aliases are problems (and left out).
func pairs(m *yaml.Node, prefix string, probs *Problems) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			probs.add(k.Line, "%skeys must be names", prefix)
			continue
		case v.Kind == yaml.AliasNode || k.Value == "<<":
			probs.add(k.Line, "%s%s: YAML aliases and merge keys are not supported", prefix, k.Value)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			probs.add(k.Line, "%s%s: given twice (first at line %d)", prefix, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

// section reads one of permatrix's sections: every leaf names a flag.
func (f *File) section(path string, n *yaml.Node, probs *Problems) {
	if n.Kind != yaml.MappingNode {
		if !isNull(n) {
			probs.add(n.Line, "%s: want a mapping", path)
		}
		return
	}
	for _, kv := range pairs(n, path+".", probs) {
		key := path + "." + kv[0].Value
		switch {
		case hasChildren(key):
			f.section(key, kv[1], probs)
		case flagOf(key) != "":
			f.scalar(key, kv[1], probs)
		default:
			probs.add(kv[0].Line, "unknown key %q (%s takes: %s)", key, path, strings.Join(childrenOf(path), ", "))
		}
	}
}

// scalar records the flag a leaf sets: a scalar, or a list for list flags.
func (f *File) scalar(key string, n *yaml.Node, probs *Problems) {
	flag := flagOf(key)
	var value string
	switch {
	case isNull(n):
		probs.add(n.Line, "%s: no value", key)
		return
	case n.Kind == yaml.ScalarNode:
		value = n.Value
	case n.Kind == yaml.SequenceNode && listFlags[flag]:
		var items []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode || strings.Contains(item.Value, ",") {
				probs.add(item.Line, "%s: want a list of plain values (without commas)", key)
				return
			}
			items = append(items, item.Value)
		}
		value = strings.Join(items, ",")
	default:
		probs.add(n.Line, "%s: want a single value", key)
		return
	}
	f.settings = append(f.settings, setting{key: key, flag: flag, value: value, line: n.Line})
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// Apply sets the flags the file sets, unless they were given (on the
// command line or in the environment: Changed). A value a flag refuses is
// a problem; so is a key whose flag this build lacks.
func (f *File) Apply(flags *pflag.FlagSet) error {
	probs := &Problems{Path: f.Path}
	for _, s := range f.settings {
		fl := flags.Lookup(s.flag)
		switch {
		case fl == nil:
			probs.add(s.line, "%s: not supported by this command (no --%s)", s.key, s.flag)
		case fl.Changed:
			// The command line or PERMATRIX_* wins.
		default:
			if err := flags.Set(s.flag, s.value); err != nil {
				probs.add(s.line, "%s: %v", s.key, err)
				continue
			}
			_ = flags.SetAnnotation(s.flag, Annotation, []string{s.key})
		}
	}
	return probs.err()
}

// Annotation marks a flag Apply set from the file (its value the key's),
// so that a command can tell the file's flags from the command line's.
const Annotation = "permatrix-config"

// Key is the key that sets flag in the file and its line (ok false if the
// file does not set it): for messages about a value the file gave.
func (f *File) Key(flag string) (key string, line int, ok bool) {
	i := slices.IndexFunc(f.settings, func(s setting) bool { return s.flag == flag })
	if i < 0 {
		return "", 0, false
	}
	return f.settings[i].key, f.settings[i].line, true
}

// Add records a problem with the value the file gives flag, at its key's
// line (a check the file's reader cannot make, e.g. serve's own).
func (p *Problems) Add(line int, msg string) { p.add(line, "%s", msg) }

// Sets reports whether the file sets flag.
func (f *File) Sets(flag string) bool {
	return slices.ContainsFunc(f.settings, func(s setting) bool { return s.flag == flag })
}

// toJSON turns an OPA section into plain JSON values, recording each
// path's line (dotted, as OPA's messages name them).
func toJSON(n *yaml.Node, path string, lines map[string]int, probs *Problems) (any, bool) {
	lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, kv := range pairs(n, path+".", probs) {
			v, good := toJSON(kv[1], path+"."+kv[0].Value, lines, probs)
			lines[path+"."+kv[0].Value] = kv[0].Line
			out[kv[0].Value], ok = v, ok && good
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			v, good := toJSON(item, fmt.Sprintf("%s.%d", path, i), lines, probs)
			out, ok = append(out, v), ok && good
		}
		return out, ok
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			probs.add(n.Line, "%s: %v", path, err)
			return nil, false
		}
		switch v.(type) {
		case nil, bool, string, int, int64, uint64, float64:
			return v, true
		}
		// Timestamps and the like: OPA reads JSON, where they are strings.
		return n.Value, true
	}
	probs.add(n.Line, "%s: YAML aliases are not supported", path)
	return nil, false
}

// yamlLine is the line a YAML syntax error names (0 if none) and the
// rest of its message.
func yamlLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr != nil {
		return 0, msg
	}
	_, rest, _ := strings.Cut(msg, ": ")
	return line, rest
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
