package permatrix

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. Each maps to one HTTP status (HTTPStatus); the message is
// meant for the client and says what was wrong with its request.
const (
	EINVALID       = "invalid"              // malformed or incomplete request (400)
	EUNAUTHORIZED  = "unauthorized"         // missing or wrong admin token (401)
	EFORBIDDEN     = "forbidden"            // the actor may not make this change (403)
	ENOTFOUND      = "not_found"            // (404)
	ECONFLICT      = "conflict"             // (409)
	ETOOLARGE      = "too_large"            // body over the limit (413)
	EHEADERS       = "headers_too_large"    // request headers over the limit (431)
	EUNPROCESSABLE = "unprocessable"        // well formed, but the vendor rules forbid it (422)
	EUNAVAILABLE   = "unavailable"          // not ready: no bundle or no db (503)
	ESTORAGE       = "insufficient_storage" // the store's disk refused the write: full, quota, read-only, I/O error (507)
	EINTERNAL      = "internal"             // a fault; never an allow (500)
)

// statuses are the codes' HTTP statuses: the one place they are mapped,
// read by the server (the status it answers) and the client (the code of
// an answer without permatrix's envelope).
var statuses = map[string]int{
	EINVALID:       http.StatusBadRequest,
	EUNAUTHORIZED:  http.StatusUnauthorized,
	EFORBIDDEN:     http.StatusForbidden,
	ENOTFOUND:      http.StatusNotFound,
	ECONFLICT:      http.StatusConflict,
	ETOOLARGE:      http.StatusRequestEntityTooLarge,
	EHEADERS:       http.StatusRequestHeaderFieldsTooLarge,
	EUNPROCESSABLE: http.StatusUnprocessableEntity,
	EUNAVAILABLE:   http.StatusServiceUnavailable,
	ESTORAGE:       http.StatusInsufficientStorage,
	EINTERNAL:      http.StatusInternalServerError,
}

// codes are statuses the other way round, and the gateways' errors.
var codes = func() map[int]string {
	m := map[int]string{http.StatusBadGateway: EUNAVAILABLE, http.StatusGatewayTimeout: EUNAVAILABLE}
	for code, status := range statuses {
		m[status] = code
	}
	return m
}()

// HTTPStatus is the HTTP status of an error code: 500 for a code that is
// not one of the codes above.
func HTTPStatus(code string) int {
	if status, ok := statuses[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// StatusCode is the code of an HTTP status answered without one (a
// proxy's 404 page, a load balancer's 502): the code the server answers
// that status with, EUNAVAILABLE for a gateway's error, EINTERNAL for any
// other status.
func StatusCode(status int) string {
	if code, ok := codes[status]; ok {
		return code
	}
	return EINTERNAL
}

// Error is an application error with a machine-readable code and a
// human-readable message.
type Error struct {
	Code    string
	Message string
	// Details carries structured reasons (e.g. each violated vendor rule).
	Details []string
}

func (e *Error) Error() string { return fmt.Sprintf("permatrix: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an application error, EINTERNAL otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the client-facing message of err. Internal errors
// get a generic message so that no internals leak to clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
