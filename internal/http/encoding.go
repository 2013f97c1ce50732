package http

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// decompress lets any request body arrive gzip-compressed (Content-Encoding:
// gzip, as OPA's clients send it), bounded like every body: the
// decompressed bytes count against the same limit as plain ones, so a gzip
// bomb stops at the limit with 413 (the compressed bytes are bounded by the
// body-limit middleware before this). Other content codings answer 415.
//
// The body is decoded lazily, when a handler reads it: forward-auth, which
// never reads one, is not refused for the Content-Encoding of a request a
// proxy describes.
func decompress(limit int64, unlimited func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			limit := limit
			if unlimited(c) {
				limit = 1 << 62 // bounded by what reads it (an import by its lines)
			}
			r := c.Request()
			enc := strings.ToLower(strings.TrimSpace(strings.Join(r.Header.Values(echo.HeaderContentEncoding), ",")))
			switch enc {
			case "", "identity":
				return next(c)
			case "gzip", "x-gzip":
				r.Body = &gzipBody{raw: r.Body, limit: limit}
			default:
				r.Body = &refusedBody{raw: r.Body, err: echo.NewHTTPError(http.StatusUnsupportedMediaType,
					fmt.Sprintf("Content-Encoding %q is not supported: send the body as is or gzip-compressed", enc))}
			}
			// ContentLength stays the bytes on the wire (the metrics' request
			// size); nothing reads it as the decoded length.
			return next(c)
		}
	}
}

// gzipBody decompresses raw on the first Read and stops after limit
// decompressed bytes.
type gzipBody struct {
	raw   io.ReadCloser
	limit int64
	zr    *gzip.Reader
	n     int64
	err   error
}

func (b *gzipBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.zr == nil {
		zr, err := gzip.NewReader(b.raw)
		if err != nil {
			b.err = gzipError(err)
			return 0, b.err
		}
		b.zr = zr
	}
	n, err := b.zr.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		b.err = echo.ErrStatusRequestEntityTooLarge
		return 0, b.err
	}
	if err != nil && err != io.EOF {
		b.err = gzipError(err)
		return n, b.err
	}
	return n, err
}

func (b *gzipBody) Close() error { return b.raw.Close() }

// gzipError is a body that is not valid gzip (400), unless reading the raw
// body failed with an HTTP error of its own (over the compressed limit: 413).
func gzipError(err error) error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he
	}
	return echo.NewHTTPError(http.StatusBadRequest, "Content-Encoding gzip, but the body is not valid gzip: "+err.Error())
}

// refusedBody fails every Read with err.
type refusedBody struct {
	raw io.ReadCloser
	err error
}

func (b *refusedBody) Read([]byte) (int, error) { return 0, b.err }
func (b *refusedBody) Close() error             { return b.raw.Close() }
