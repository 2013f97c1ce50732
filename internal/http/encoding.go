package http

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
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
			limit, ratio := limit, int64(0)
			r := c.Request()
			if unlimited(c) {
				// Bounded by what reads it (an import by its lines), and by
				// what the client sends (maxGzipRatio).
				limit, ratio = 1<<62, maxGzipRatio
				// Read ahead, so that its client leaving ends it (readAhead).
				ra := newReadAhead(r.Body, c.Response().Writer)
				defer ra.stop()
				r.Body = ra
				c.Set(readAheadKey, ra)
			}
			enc := strings.ToLower(strings.TrimSpace(strings.Join(r.Header.Values(echo.HeaderContentEncoding), ",")))
			switch enc {
			case "", "identity":
				return next(c)
			case "gzip", "x-gzip":
				r.Body = &gzipBody{raw: r.Body, limit: limit, ratio: ratio}
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

// maxGzipRatio bounds how much more an import's body decompresses to
// than its client sent, past the first ratioFree bytes. Each line costs
// a decoding and a judgement, and gzip makes 294 bytes of one line
// repeated from each byte sent (1,028 of blank lines): the work an import
// cost was out of proportion to what its client sent, and it went on
// after the client left. No import written by permatrix or a person
// compresses so well: a generated export ~12:1, assignments of sequential
// user and project ids ~23:1, one user's over sequential project ids
// ~45:1.
const maxGzipRatio = 100

// ratioFree is what a gzip body may decompress to before maxGzipRatio
// applies: a small body's gzip header and tables are most of it.
const ratioFree = 1 << 20

// gzipBody decompresses raw on the first Read and stops after limit
// decompressed bytes, or (ratio > 0) past ratioFree when they are more
// than ratio times the compressed bytes read.
type gzipBody struct {
	raw   io.ReadCloser
	limit int64
	ratio int64
	zr    *gzip.Reader
	in    countingReader
	n     int64
	err   error
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (b *gzipBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.zr == nil {
		b.in.r = b.raw
		zr, err := gzip.NewReader(&b.in)
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
	if b.ratio > 0 && b.n > ratioFree && b.n > b.ratio*b.in.n {
		b.err = permatrix.Errorf(permatrix.EINVALID,
			"the gzip body decompresses to more than %d times its compressed size (%d bytes from %d): no NDJSON import compresses so well",
			b.ratio, b.n, b.in.n)
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
