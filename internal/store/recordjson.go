package store

import (
	"encoding/json"
	"errors"
	"strings"
)

// recordFieldNames are the names of the fields of the records' values
// (grantLeaf, permatrix.Scope, roleValue, projectValue).
var recordFieldNames = []string{"kind", "role", "permission", "scope", "via", "assignment", "type", "id", "permissions", "created_by"}

// errLooseFieldName and errNotObject are unmarshalRecord's refusals.
var (
	errLooseFieldName = errors.New("an object key spelled otherwise than the field json binds it to (another case, or a letter folding to it)")
	errNotObject      = errors.New("not a JSON object")
)

// unmarshalRecord is json.Unmarshal of a record's value into dst,
// refusing a value with an object key that json.Unmarshal binds to a
// field of another spelling ("Scope", "SCOPE", "ſcope" for scope): the
// policies read a leaf's keys as written, so such a value is read as one
// record here and as another by a decision. Duplicates of the exact name
// are not refused: both read the last. A value that is no object is
// refused: json.Unmarshal takes null into a struct as nothing, and a
// project leaf of null was a sound record here while the policies read a
// project that is present (TestCheckRecordRefusesEmptiedRecords).
func unmarshalRecord(v []byte, dst any) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(v, &generic); err != nil {
		return err
	}
	if _, ok := generic.(map[string]any); !ok {
		return errNotObject
	}
	if looseFieldName(generic) {
		return errLooseFieldName
	}
	return nil
}

// looseFieldName reports whether an object in x has a key that folds to
// one of recordFieldNames without being it.
func looseFieldName(x any) bool {
	switch x := x.(type) {
	case map[string]any:
		for k, e := range x {
			for _, n := range recordFieldNames {
				if k != n && strings.EqualFold(k, n) {
					return true
				}
			}
			if looseFieldName(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if looseFieldName(e) {
				return true
			}
		}
	}
	return false
}

// hasStringFields says whether the JSON object v has each of names as a
// key with a string value (not null: json.Unmarshal reads a missing key
// and null as "", the policies read neither as a string).
func hasStringFields(v []byte, names ...string) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(v, &fields) != nil {
		return false
	}
	for _, name := range names {
		if f, ok := fields[name]; !ok || len(f) == 0 || f[0] != '"' {
			return false
		}
	}
	return true
}
