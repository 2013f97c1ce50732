package store_test

import (
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// TestCheckRecordRefusesFieldNamesDecodedLoosely: json.Unmarshal binds an
// object key to a field whatever its case ("Scope", "SCOPE", and "ſcope",
// whose long s folds to s), while the policies read the leaf's keys as
// written: a grant leaf holding "scope" (what a decision reads) and
// "Scope" (what the check and the store's reads take, last) was accepted
// as the grant its key names while deciding with another scope. Such a
// record is not one permatrix writes: the check refuses it, and so do the
// store's reads of it. Duplicates of the exact name stay read last under
// both (TestGrantLeafDuplicateKeysReadAsTheStoreCheckReadsThem).
func TestCheckRecordRefusesFieldNamesDecodedLoosely(t *testing.T) {
	a := permatrix.Assignment{ID: "a1", Subject: "user:u0", System: "uipath-task-mining-suite", Role: "analyst", Scope: permatrix.Scope{Type: "project", ID: "p"}}
	grant := string(store.GrantKey(a))
	role := string(store.Key("d", "roles", "s", "r"))
	project := string(store.Key("d", "projects", "s", "p"))
	good := `{"kind":"role","role":"analyst","scope":{"type":"project","id":"p"},"via":"user:u0","assignment":"a1"}`
	for _, c := range []struct{ key, value string }{
		{grant, `{"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:u0","assignment":"a1","Scope":{"type":"project","id":"p"}}`},
		{grant, `{"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:u0","assignment":"a1","SCOPE":{"type":"project","id":"p"}}`},
		{grant, `{"kind":"role","role":"analyst","scope":{"type":"service"},"via":"user:u0","assignment":"a1","ſcope":{"type":"project","id":"p"}}`},
		{grant, `{"kind":"role","role":"analyst","scope":{"type":"project","id":"q","ID":"p"},"via":"user:u0","assignment":"a1"}`},
		{grant, `{"kind":"role","role":"analyst","scope":{"type":"project","id":"p"},"via":"user:u1","assignment":"a1","Via":"user:u0"}`},
		{role, `{"permissions":["admin"],"Permissions":["view"]}`},
		{project, `{"created_by":"u","kind":"unassisted","KIND":"assisted"}`},
	} {
		if err := store.CheckRecord([]byte(c.key), []byte(c.value)); err == nil {
			t.Errorf("%s: accepted", c.value)
		}
	}
	for _, c := range []struct{ key, value string }{
		{grant, good},
		{grant, strings.Replace(good, `"via"`, `"\u0076ia"`, 1)}, // an escape of the exact name is the name
		{role, `{"permissions":["view"]}`},
		{project, `{"created_by":"u","kind":"unassisted"}`},
	} {
		if err := store.CheckRecord([]byte(c.key), []byte(c.value)); err != nil {
			t.Errorf("%s: %v", c.value, err)
		}
	}
}
