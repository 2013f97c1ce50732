package store

import (
	"encoding/json"
	"errors"
	"strings"
)

// recordFieldNames are the names of the fields of the records' values
// (grantLeaf, permatrix.Scope, roleValue, projectValue).
var recordFieldNames = []string{"kind", "role", "permission", "scope", "via", "assignment", "type", "id", "permissions", "created_by"}

// errLooseFieldName, errNotObject and errNotString are unmarshalRecord's
// refusals.
var (
	errLooseFieldName = errors.New("an object key spelled otherwise than the field json binds it to (another case, or a letter folding to it)")
	errNotObject      = errors.New("not a JSON object")
	errNotString      = errors.New("a field permatrix writes as a string is missing, null or not a string")
)

// unmarshalRecord is json.Unmarshal of a record's value into dst,
// refusing a value with an object key that json.Unmarshal binds to a
// field of another spelling ("Scope", "SCOPE", "ſcope" for scope): the
// policies read a leaf's keys as written, so such a value is read as one
// record here and as another by a decision. Duplicates of the exact name
// are not refused: both read the last. A value that is no object is
// refused: json.Unmarshal takes null into a struct as nothing, and a
// project leaf of null was a sound record here while the policies read a
// project that is present (TestCheckRecordRefusesEmptiedRecords). Each
// of stringFields must be a key of the object with a string value:
// json.Unmarshal reads a missing key and null as "", the policies read
// neither as a string.
func unmarshalRecord(v []byte, dst any, stringFields ...string) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(v, &generic); err != nil {
		return err
	}
	object, ok := generic.(map[string]any)
	if !ok {
		return errNotObject
	}
	for _, name := range stringFields {
		if _, ok := object[name].(string); !ok {
			return errNotString
		}
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

// unmarshalProject is a project's value: both fields as permatrix writes
// them (Tx.PutProject), strings — the policies read an absent created_by
// as no creator at all, and the rule on re-registering another's project
// does not apply to it (TestCheckRecordRefusesPartialProjects).
func unmarshalProject(v []byte) (projectValue, error) {
	var pv projectValue
	err := unmarshalRecord(v, &pv, "created_by", "kind")
	return pv, err
}
