package opa

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/open-policy-agent/opa/v1/bundle"
	"go.yaml.in/yaml/v3"
)

// A bundle's data.json is read by OPA's JSON decoder, which keeps the last
// of a name given twice in one object — `"admin": {...}` twice in a
// catalog's roles, the second granting more than a reviewer of the first
// sees — without a word. A bundle whose data file names a member twice is
// refused, naming the file and where (as request bodies and --config files
// are: docs/security.md).

// maxDataFileBytes is OPA's own bound on a bundle file (its default
// size_limit_bytes): a data file is read once more, whole, to check it.
const maxDataFileBytes = 1 << 30

// isDataFile reports whether name is a data file the loaders decode: JSON
// or YAML (in a tree any such file, in a bundle data.json, data.yaml and
// data.yml).
func isDataFile(name string) bool {
	switch path.Ext(name) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// checkDataNames refuses a data file (JSON, or YAML by its extension)
// whose objects name a member twice. name is the file, for the message.
func checkDataNames(name string, r io.Reader) error {
	if ext := path.Ext(name); ext == ".yaml" || ext == ".yml" {
		raw, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		// yaml.v3 refuses a mapping key given twice ("already defined")
		// when it decodes into a value (not into a yaml.Node).
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("bundle file %s: %w (a data file may name a member only once per object)", name, err)
		}
		return nil
	}
	dec := jsontext.NewDecoder(r) // rejects duplicate names by default
	for {
		if _, err := dec.ReadToken(); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("bundle file %s: %w (a data file may name a member only once per object)", name, err)
		}
	}
}

// checkLayoutData checks every data file (isDataFile) of a layout's catalogs (paths:
// layoutPaths', "dir" or "dir:prefix").
func checkLayoutData(fsys fs.FS, paths []string) error {
	for _, p := range paths[1:] { // paths[0] is policies/
		dir, _, _ := strings.Cut(p, ":")
		err := fs.WalkDir(fsys, dir, func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isDataFile(name) {
				return err
			}
			f, err := fsys.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			return checkDataNames(name, io.LimitReader(f, maxDataFileBytes))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// dataNamesLoader checks each data file an OPA bundle's loader gives
// before the bundle reader decodes it (the reader calls NextFile only).
type dataNamesLoader struct {
	bundle.DirectoryLoader
}

func (l dataNamesLoader) NextFile() (*bundle.Descriptor, error) {
	d, err := l.DirectoryLoader.NextFile()
	if err != nil || !bundle.IsStructuredDoc(d.Path()) { // data.json, data.yaml, data.yml, .manifest
		return d, err
	}
	defer d.Close()
	var buf bytes.Buffer
	if n, err := d.Read(&buf, maxDataFileBytes+1); err != nil && err != io.EOF {
		return nil, err
	} else if n > maxDataFileBytes {
		return nil, fmt.Errorf("bundle file %s is more than %d bytes", strings.TrimPrefix(d.Path(), "/"), maxDataFileBytes)
	}
	if err := checkDataNames(strings.TrimPrefix(d.Path(), "/"), bytes.NewReader(buf.Bytes())); err != nil {
		return nil, err
	}
	return bundle.NewDescriptor(d.URL(), d.Path(), &buf), nil
}
