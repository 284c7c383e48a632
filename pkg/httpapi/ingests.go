package httpapi

import (
	_ "embed"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/store"
)

// IngestsSpec documents GET /api/ingests (merged by specFragments).
//
//go:embed openapi-ingests.json
var IngestsSpec []byte

var ingestStatuses = []string{store.StatusPending, store.StatusProcessed, store.StatusDuplicate, store.StatusFailed}

// sourceName is what a source is called (upload, import, imap, and those still to come): a
// value outside it can match nothing, so it is a 400 rather than an empty page.
var sourceName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// listIngests is GET /api/ingests: received files newest first, so a person or script finds
// every failed file with one request (status=failed) instead of asking file by file.
func (a *API) listIngests(c echo.Context) error {
	var f store.IngestFilter
	if v := strings.ToLower(strings.TrimSpace(c.QueryParam("status"))); v != "" {
		if !slices.Contains(ingestStatuses, v) {
			return badParam("status", "want one of %s", strings.Join(ingestStatuses, ", "))
		}
		f.Status = v
	}
	if v := strings.ToLower(strings.TrimSpace(c.QueryParam("source"))); v != "" {
		if !sourceName.MatchString(v) {
			return badParam("source", "want a source name such as upload, import or imap")
		}
		f.Source = v
	}
	var err error
	if f.Start, f.End, err = apiparams.Window(c, a.now()); err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rows, total, err := a.Store.ListIngests(ctx, f, p)
	if err != nil {
		return err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	reports, err := a.Store.IngestsReportIDs(ctx, ids)
	if err != nil {
		return err
	}
	items := make([]IngestView, len(rows))
	for i, r := range rows {
		rids := reports[r.ID]
		if rids == nil {
			rids = []int64{}
		}
		items[i] = ingestView(r, rids)
	}
	return c.JSON(http.StatusOK, List[IngestView]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}
