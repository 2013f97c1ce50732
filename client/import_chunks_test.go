package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/test/harness"
)

// ImportChunks commits every chunk lines (POST /v1/import?chunk=N): a
// refused line keeps the chunks before it, and the result says how far
// the import got, to send the rest again.
func TestImportChunks(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	c := s.API()
	ctx := context.Background()
	var body strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&body, `{"subject":"user:c%d","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`+"\n", i)
	}
	body.WriteString(`{"subject":"user:x","system":"celonis-task-mining","permission":"create_project","scope":{"type":"project","id":"p"}}` + "\n")
	res, err := c.ImportChunks(ctx, strings.NewReader(body.String()), 2)
	wantError(t, err, 422, permatrix.EUNPROCESSABLE, "line 6")
	if res.LastLine != 4 || res.Imported != 4 || res.AlreadyStored != 0 || res.Revision == 0 {
		t.Fatalf("how far a refused chunked import got: %+v", res)
	}
	if list, err := c.Assignments(ctx, permatrix.AssignmentFilter{Subject: "user:c4"}); err != nil || len(list.Assignments) != 1 {
		t.Fatalf("the chunks before the refused line: %+v %v", list, err)
	}
	// The whole file again, without its refused line: the lines stored
	// are no-ops.
	good := body.String()[:strings.LastIndex(strings.TrimSuffix(body.String(), "\n"), "\n")+1]
	res, err = c.ImportChunks(ctx, strings.NewReader(good), 2)
	if err != nil || res.Lines != 5 || res.Imported != 1 || res.AlreadyStored != 4 || res.LastLine != 5 || res.Chunks != 1 {
		t.Fatalf("again: %+v %v", res, err)
	}
	_, err = c.ImportChunks(ctx, strings.NewReader(good), -1)
	wantError(t, err, 400, permatrix.EINVALID, "chunk")
}

// An export through ExportRecords imports into an empty store through
// ImportChunks, and exports again as the same document.
func TestExportRecordsImportsBack(t *testing.T) {
	ctx := context.Background()
	from := harness.Start(t, harness.Options{})
	c := from.API()
	if _, err := c.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "viewer", Permissions: []string{"design_global_dashboards"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutProject(ctx, permatrix.Project{System: "uipath-task-mining-cloud", ID: "p1", CreatedBy: "carol", Kind: "assisted"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.CreateAssignment(ctx, permatrix.Assignment{Subject: "group:ops", System: "blueprism", Role: "viewer", Scope: permatrix.ServiceScope}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddMember(ctx, "ops", "erin"); err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	if _, err := c.ExportRecords(ctx, &lines); err != nil {
		t.Fatal(err)
	}
	to := harness.Start(t, harness.Options{})
	res, err := to.API().ImportChunks(ctx, &lines, 1)
	if err != nil || res.Lines != 5 || res.Imported != 5 || res.Chunks != 5 {
		t.Fatalf("import of the export: %+v %v", res, err)
	}
	if a, b := storeOf(t, from), storeOf(t, to); !reflect.DeepEqual(a, b) {
		t.Fatalf("exported\n%v\nimported\n%v", a, b)
	}
}

// storeOf is the server's export, its revision left out.
func storeOf(t *testing.T, s *harness.Server) map[string]any {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.API().Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	var doc struct{ Store map[string]any }
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc.Store, "revision")
	return doc.Store
}
