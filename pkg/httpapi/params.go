package httpapi

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/store"
)

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func pageParams(c echo.Context) (store.Page, error) {
	p := store.Page{Number: 1, Size: defaultPageSize}
	if v := c.QueryParam("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, badParam("page", "want a whole number from 1")
		}
		p.Number = n
	}
	if v := c.QueryParam("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, badParam("page_size", "want a whole number from 1 to %d", maxPageSize)
		}
		p.Size = n
	}
	return p, nil
}

func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id < 1 {
		return 0, badParam(name, "want a positive whole number")
	}
	return id, nil
}
