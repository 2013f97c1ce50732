package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/internal/opa"
)

type matrixOptions struct {
	bundle   string
	format   string
	scopes   []string
	contexts []string
	also     []string
}

func newMatrix() *cobra.Command {
	o := matrixOptions{}
	cmd := &cobra.Command{
		Use:   "matrix SYSTEM",
		Short: "Print a system's permission matrix as the policies decide it",
		Long: `Print what each role of SYSTEM allows, action by action, at each scope type.
Every cell is a decision of the policies (the embedded bundle, or --bundle)
for a user who holds only that role in an empty store: a role that may be held
at service scope is held there and checked at service scope and on project
"p1"; a project-only role is held on "p1" and checked there. Project "p1" is
registered as created by that user, so creator-only rights show.

Systems without built-in roles (Blue Prism's roles are defined at run time,
UiPath Orchestrator has permissions only) get one column per permission held
alone; the table and markdown formats then list what each permission allows.

Prerequisites in other systems are not held unless --also gives them, e.g.
  permatrix matrix uipath-task-mining-suite --also 'uipath-orchestrator:*'
and checks carry no context unless --context gives one, e.g.
  permatrix matrix uipath-task-mining-cloud --context 'assign_roles={"role":"business_analyst"}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runMatrix(cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.bundle, "bundle", "", "policy bundle: a directory, a .tar.gz OPA bundle or an http(s) URL (default: the embedded one)")
	f.StringVarP(&o.format, "format", "f", "table", "output format: "+strings.Join(matrix.Formats, ", "))
	// --format means another thing in each command: its own variable.
	ownEnv(f, "matrix", "format")
	f.StringSliceVar(&o.scopes, "scope", nil, "only checks at this scope type (service, project, …; repeatable)")
	f.StringArrayVar(&o.contexts, "context", nil, `ACTION=JSON: the context of every check of ACTION (repeatable)`)
	f.StringArrayVar(&o.also, "also", nil, "SYSTEM:PERMISSION (or SYSTEM:*) the probe user also holds, at service scope (repeatable)")
	return cmd
}

func runMatrix(cmd *cobra.Command, system string, o matrixOptions) error {
	if !slices.Contains(matrix.Formats, o.format) {
		return fmt.Errorf("--format %q: want one of %s", o.format, strings.Join(matrix.Formats, ", "))
	}
	contexts := map[string]map[string]any{}
	for _, c := range o.contexts {
		action, raw, ok := strings.Cut(c, "=")
		var v map[string]any
		if !ok || action == "" {
			return fmt.Errorf("--context %q: want ACTION=JSON object", c)
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil || v == nil {
			return fmt.Errorf("--context %q: the value must be a JSON object", c)
		}
		contexts[action] = v
	}
	b, err := opa.ReadBundle(cmd.Context(), o.bundle, opa.ReadOptions{})
	if err != nil {
		return err
	}
	m, err := matrix.Build(cmd.Context(), b, system, matrix.Options{Scopes: o.scopes, Contexts: contexts, Also: o.also})
	if err != nil {
		return err
	}
	return m.Render(cmd.OutOrStdout(), o.format)
}
