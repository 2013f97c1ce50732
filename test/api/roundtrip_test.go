package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/test/harness"
)

// An export (GET /v1/export?format=ndjson) imports into an empty store as
// the same store, on either backend: on etcd a chunk larger than one
// transaction is committed in as many as it takes, records of every kind
// among its lines.
func TestExportImportsBack(t *testing.T) {
	from := harness.Start(t, harness.Options{})
	c := from.API()
	for i := range 3 {
		if _, err := c.PutRole(ctx, permatrix.Role{System: "blueprism", Name: fmt.Sprintf("role%d", i), Permissions: []string{"design_global_dashboards"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutProject(ctx, permatrix.Project{System: "uipath-task-mining-cloud", ID: fmt.Sprintf("p%d", i), CreatedBy: fmt.Sprintf("creator%d", i), Kind: "assisted"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		a := permatrix.Assignment{Subject: fmt.Sprintf("group:g%d", i%4), System: "blueprism", Role: fmt.Sprintf("role%d", i%3),
			Scope: permatrix.Scope{Type: "process_group", ID: fmt.Sprintf("pg%d", i)}}
		if _, _, err := c.CreateAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddMember(ctx, fmt.Sprintf("g%d", i%4), fmt.Sprintf("u%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var lines bytes.Buffer
	if _, err := c.ExportRecords(ctx, &lines); err != nil {
		t.Fatal(err)
	}
	to := harness.Start(t, harness.Options{})
	res, err := to.API().ImportChunks(ctx, bytes.NewReader(lines.Bytes()), 1000)
	if err != nil || res.Lines != 49 || res.Imported != 49 {
		t.Fatalf("import of the export: %+v %v", res, err)
	}
	a, b := exported(t, from), exported(t, to)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("exported\n%v\nimported\n%v", a, b)
	}
}

// exported is the server's GET /v1/export, its revision left out.
func exported(t *testing.T, s *harness.Server) map[string]any {
	t.Helper()
	var doc struct{ Store map[string]any }
	if err := json.Unmarshal(exportOf(t, s.API()), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc.Store, "revision")
	return doc.Store
}
