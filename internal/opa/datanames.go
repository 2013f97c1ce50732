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

// checkDataNames refuses JSON whose objects name a member twice. name is
// the file, for the message.
func checkDataNames(name string, r io.Reader) error {
	dec := jsontext.NewDecoder(r) // rejects duplicate names by default
	for {
		if _, err := dec.ReadToken(); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("bundle file %s: %w (a data file may name a member only once per object)", name, err)
		}
	}
}

// checkLayoutData checks every .json file of a layout's catalogs (paths:
// layoutPaths', "dir" or "dir:prefix").
func checkLayoutData(fsys fs.FS, paths []string) error {
	for _, p := range paths[1:] { // paths[0] is policies/
		dir, _, _ := strings.Cut(p, ":")
		err := fs.WalkDir(fsys, dir, func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || path.Ext(name) != ".json" {
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

// dataNamesLoader checks each data.json an OPA bundle's loader gives
// before the bundle reader decodes it (the reader calls NextFile only).
type dataNamesLoader struct {
	bundle.DirectoryLoader
}

func (l dataNamesLoader) NextFile() (*bundle.Descriptor, error) {
	d, err := l.DirectoryLoader.NextFile()
	if err != nil || path.Base(d.Path()) != "data.json" {
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
