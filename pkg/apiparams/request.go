package apiparams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/store"
)

// List is the envelope of every list response (DESIGN.md): one type, so every list answers
// the same four fields.
type List[T any] struct {
	Items    []T   `json:"items"`
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
}

// Problem is an error the API's error handler renders as an RFC 9457 problem of the status
// (pkg/httpapi), the detail formatted.
func Problem(status int, format string, args ...any) error {
	return echo.NewHTTPError(status, fmt.Sprintf(format, args...))
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// Page reads page (from 1) and page_size (1 to 500, default 50) as a store.Page, exactly as
// sent (no spaces trimmed): the paging of the lists of reports, ingests, users, keys and
// mailboxes.
func Page(c echo.Context) (store.Page, error) {
	p := store.Page{Number: 1, Size: defaultPageSize}
	if v := c.QueryParam("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, BadParam("page", "want a whole number from 1 to 1000000")
		}
		p.Number = n
	}
	if v := c.QueryParam("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, BadParam("page_size", "want a whole number from 1 to %d", maxPageSize)
		}
		p.Size = n
	}
	return p, nil
}

// ID reads a path parameter that is a row id (a whole number from 1).
func ID(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id < 1 {
		return 0, BadParam(name, "want a whole number from 1")
	}
	return id, nil
}

// PathParam is a path segment decoded: generated clients percent-encode every path parameter
// (a task id's colons become %3A), and echo hands over the segment as it came.
func PathParam(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "", BadParam(name, "not a valid percent-encoded path segment")
	}
	return v, nil
}

// maxJSONBody bounds every JSON request body (SECURITY-CASES D.31).
const maxJSONBody = 1 << 20

// ReadOptionalJSON is ReadJSON for routes whose body may be left out: no body leaves v as it is.
func ReadOptionalJSON(c echo.Context, v any) error {
	if c.Request().ContentLength == 0 {
		return nil
	}
	return ReadJSON(c, v)
}

// ReadJSON decodes a JSON object body into v, refusing other content types (415), bodies over
// 1 MiB (413), unknown fields and wrong types (400 naming the field), so a client cannot slip
// in a field the handler did not mean to take (mass assignment), and text that is not UTF-8.
func ReadJSON(c echo.Context, v any) error {
	req := c.Request()
	if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return Problem(http.StatusUnsupportedMediaType, "want Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Problem(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxJSONBody)
		}
		return Problem(http.StatusBadRequest, "unreadable body: %v", err)
	}
	if err := strictUTF8(body); err != nil {
		return Problem(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return Problem(http.StatusBadRequest, "the body must be a JSON object")
		case errors.As(err, &te):
			return BadParam(te.Field, "want %s", jsonKind(te.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Fail(KindUnknownField, "parameter "+name+": not a field this request takes")
		default:
			// Errors from a field's own UnmarshalJSON (a role name) land here.
			return Problem(http.StatusBadRequest, "invalid JSON body: %v", err)
		}
	}
	if dec.More() {
		return Problem(http.StatusBadRequest, "invalid JSON body: more than one value")
	}
	return nil
}

// strictUTF8 refuses a JSON text that is not UTF-8 (RFC 8259 §8.1), raw or through an
// unpaired surrogate escape such as "\ud800". encoding/json would turn either into U+FFFD
// without a word, so a password of invalid bytes would silently become another password
// (issue 18).
func strictUTF8(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // an escape of one character, such as \\ or \"
			continue
		}
		r, ok := hex4(body[i+2:])
		switch {
		case !ok:
			i++
		case r >= 0xDC00 && r <= 0xDFFF:
			return errors.New("an unpaired surrogate escape (\\u" + string(body[i+2:i+6]) + ") is not a character")
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex4(body[min(i+8, len(body)):]); i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' && ok && lo >= 0xDC00 && lo <= 0xDFFF {
				i += 11
				continue
			}
			return errors.New("an unpaired surrogate escape (\\u" + string(body[i+2:i+6]) + ") is not a character")
		default:
			i += 5
		}
	}
	return nil
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonKind names the JSON value a Go type takes, for people (never "a int64").
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another kind of value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}
