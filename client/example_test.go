package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
)

// A service asks its sidecar whether a user may do something. Checks need
// no token; the administration API needs the admin token.
func Example() {
	ctx := context.Background()
	pdp, err := client.New(sidecarURL, client.WithToken(adminToken))
	if err != nil {
		log.Fatal(err)
	}
	// Give alice edit_users on project p1 of Celonis Task Mining.
	_, _, err = pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:alice", System: "celonis-task-mining",
		Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: "p1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"p1", "p2"} {
		d, err := pdp.Check(ctx, permatrix.Check{
			Subject: "alice", System: "celonis-task-mining", Action: "edit_users",
			Resource: &permatrix.Scope{Type: "project", ID: p},
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("alice edit_users on %s: %v\n", p, d.Allow)
	}
	// Output:
	// alice edit_users on p1: true
	// alice edit_users on p2: false
}

// A deny says what is missing; an allow says which assignments granted it.
func ExampleClient_Check() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	a, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:bob", System: "celonis-task-mining", Permission: "edit_client_settings", Scope: permatrix.ServiceScope,
	})
	if err != nil {
		log.Fatal(err)
	}
	check := permatrix.Check{Subject: "bob", System: "celonis-task-mining", Action: "edit_client_settings"}
	d, err := pdp.Check(ctx, check)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allow:", d.Allow, "granted by bob's assignment:", d.Reasons[0]["assignment"] == a.ID)

	check.Action = "edit_users"
	d, err = pdp.Check(ctx, check)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allow:", d.Allow, "missing:", d.Missing[0]["permission"])
	// Output:
	// allow: true granted by bob's assignment: true
	// allow: false missing: edit_users
}

// Many checks in one request; an invalid one fails alone.
func ExampleClient_CheckBatch() {
	pdp, _ := client.New(sidecarURL)
	results, err := pdp.CheckBatch(context.Background(), []permatrix.Check{
		{Subject: "carol", System: "celonis-task-mining", Action: "view_project", Resource: &permatrix.Scope{Type: "project", ID: "p1"}},
		{Subject: "carol", System: "celonis-task-mining", Action: "fly"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Println("error:", permatrix.ErrorCode(r.Err))
			continue
		}
		fmt.Println("allow:", r.Decision.Allow)
	}
	// Output:
	// allow: false
	// error: invalid
}

// Errors carry the server's code, message and HTTP status.
func ExampleError() {
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	// A Celonis project may not hold create_project: the vendor rules refuse it.
	_, _, err := pdp.CreateAssignment(context.Background(), permatrix.Assignment{
		Subject: "user:dan", System: "celonis-task-mining", Permission: "create_project",
		Scope: permatrix.Scope{Type: "project", ID: "p1"},
	})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Code)
	}
	fmt.Println(permatrix.ErrorCode(err) == permatrix.EUNPROCESSABLE)

	// Without the admin token the administration API answers 401.
	anonymous, _ := client.New(sidecarURL)
	_, err = anonymous.Assignment(context.Background(), "a1")
	fmt.Println(permatrix.ErrorCode(err))
	// Output:
	// 422 unprocessable
	// true
	// unauthorized
}

// A write on behalf of a user is judged by the vendor's delegation rules.
func ExampleActor() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	const cloud = "uipath-task-mining-cloud"
	if _, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:erin", System: cloud, Role: "business_analyst", Scope: permatrix.Scope{Type: "project", ID: "px"},
	}); err != nil {
		log.Fatal(err)
	}
	// A business analyst may not make someone a recording user.
	_, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:fay", System: cloud, Role: "recording_user", Scope: permatrix.Scope{Type: "project", ID: "px"},
	}, client.Actor("erin"))
	fmt.Println(permatrix.ErrorCode(err))
	// Output: forbidden
}

// Listing every assignment, page by page.
func ExampleClient_AllAssignments() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	for _, p := range []string{"q1", "q2", "q3"} {
		if _, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
			Subject: "user:gil", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.Scope{Type: "project", ID: p},
		}); err != nil {
			log.Fatal(err)
		}
	}
	// Two a page: two requests.
	for a, err := range pdp.AllAssignments(ctx, permatrix.AssignmentFilter{Subject: "user:gil", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(a.Permission, a.Scope.ID)
	}
	// Unordered output:
	// edit_users q1
	// edit_users q2
	// edit_users q3
}

// A group's grant holds for its members.
func ExampleClient_AddMember() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	if _, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "group:ops", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope,
	}); err != nil {
		log.Fatal(err)
	}
	if _, err := pdp.AddMember(ctx, "ops", "hal"); err != nil {
		log.Fatal(err)
	}
	members, _, _ := pdp.Members(ctx, "ops")
	d, _ := pdp.Check(ctx, permatrix.Check{Subject: "hal", System: "celonis-task-mining", Action: "edit_users"})
	fmt.Println(members, d.Allow, d.Reasons[0]["via"])
	// Output: [hal] true group:ops
}

// Blue Prism's roles are defined at run time.
func ExampleClient_PutRole() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	if _, err := pdp.PutRole(ctx, permatrix.Role{System: "blueprism", Name: "developer", Permissions: []string{"edit_process", "execute_process"}}); err != nil {
		log.Fatal(err)
	}
	r, _ := pdp.Role(ctx, "blueprism", "developer")
	fmt.Println(len(r.Permissions))
	// Output: 2
}

// Where the vendor gives a project's creator a role, registering the
// project makes that assignment in the same write.
func ExampleClient_PutProject() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	const cloud = "uipath-task-mining-cloud"
	if _, _, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:ivy", System: cloud, Role: "project_creator", Scope: permatrix.ServiceScope,
	}); err != nil {
		log.Fatal(err)
	}
	w, err := pdp.PutProject(ctx, permatrix.Project{System: cloud, ID: "ivy-1", CreatedBy: "ivy", Kind: "assisted"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.CreatorAssignment.Subject, w.CreatorAssignment.Role, w.CreatorAssignment.Scope.ID)
	// Output: user:ivy project_admin ivy-1
}

// Import is all or nothing; Export streams the whole store.
func ExampleClient_Import() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken))
	ndjson := `{"subject":"user:jo","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}
{"subject":"user:kim","system":"celonis-task-mining","role":"analyst","scope":{"type":"service"}}
`
	res, err := pdp.Import(ctx, strings.NewReader(ndjson))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("imported", res.Imported)

	var export bytes.Buffer
	if _, err := pdp.Export(ctx, &export); err != nil {
		log.Fatal(err)
	}
	var doc struct {
		Store struct {
			Revision uint64 `json:"revision"`
		} `json:"store"`
	}
	_ = json.Unmarshal(export.Bytes(), &doc)
	fmt.Println("export at the import's revision or later:", doc.Store.Revision >= res.Revision)
	// Output:
	// imported 2
	// export at the import's revision or later: true
}

// With WithReadYourWrites every check carries the latest revision the
// client wrote as min_revision: in a fleet, the sidecar answering waits
// until it has applied that write.
func ExampleWithReadYourWrites() {
	ctx := context.Background()
	pdp, _ := client.New(sidecarURL, client.WithToken(adminToken), client.WithReadYourWrites())
	_, rev, err := pdp.CreateAssignment(ctx, permatrix.Assignment{
		Subject: "user:lee", System: "celonis-task-mining", Permission: "edit_users", Scope: permatrix.ServiceScope,
	})
	if err != nil {
		log.Fatal(err)
	}
	d, _ := pdp.Check(ctx, permatrix.Check{Subject: "lee", System: "celonis-task-mining", Action: "edit_users"})
	fmt.Println(d.Allow, d.Revision >= rev, pdp.Revision() == rev)
	// Output: true true true
}

// Readiness, as `permatrix health` and a Kubernetes probe ask it.
func ExampleClient_Ready() {
	pdp, _ := client.New(sidecarURL)
	h, err := pdp.Ready(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Status, h.BundleLoaded, h.DBOpen)
	// Output: ok true true
}
