// Command hello is the benchmark's HTTP floor: an Echo server (the version
// of permatrix's go.mod) that decodes the same JSON check body as
// POST /v1/check and answers a fixed decision, with nothing in between. What
// permatrix adds over it is the price of deciding.
//
//	go run ./test/bench/hello --addr 127.0.0.1:18080
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	flag.Parse()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	fixed := map[string]any{
		"allow": true, "decision_id": "00000000-0000-0000-0000-000000000000", "revision": 1,
		"reasons": []map[string]any{{"kind": "role", "role": "admin", "scope": map[string]string{"type": "service"}, "via": "user:alice"}},
		"missing": []any{},
	}
	e.POST("/v1/check", func(c echo.Context) error {
		var in permatrix.Check
		if err := (&echo.DefaultBinder{}).BindBody(c, &in); err != nil {
			return err
		}
		if in.Subject == "" || in.System == "" || in.Action == "" {
			return echo.NewHTTPError(http.StatusBadRequest, "subject, system and action are required")
		}
		return c.JSON(http.StatusOK, fixed)
	})
	e.GET("/health", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	log.Fatal(e.Start(*addr))
}
