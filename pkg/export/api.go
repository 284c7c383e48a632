package export

import (
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"github.com/vigilhq/vigil/pkg/store"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// TabularRoutes are the CSV and XLSX exports (the export_csv rate class: a spreadsheet costs
// the server what the CSV of the same rows does, so XLSX shares CSV's budget).
func (s *Service) TabularRoutes() []route.Route {
	var rs []route.Route
	for _, v := range Views {
		for _, f := range []string{"csv", "xlsx"} {
			rs = append(rs, route.Route{Method: http.MethodGet, Path: "/api/export/" + v + "/" + f, Role: auth.Viewer, Handler: s.handler(v, f)})
		}
	}
	return append(rs, route.Route{Method: http.MethodGet, Path: "/api/export/workbook/xlsx", Role: auth.Viewer, Handler: s.handler("workbook", "xlsx")})
}

// PDFRoutes are the PDF summary (the export_pdf rate class).
func (s *Service) PDFRoutes() []route.Route {
	return []route.Route{{Method: http.MethodGet, Path: "/api/export/report/pdf", Role: auth.Viewer, Handler: s.handler("report", "pdf")}}
}

// FileRoutes serve the files rendered by workers.
func (s *Service) FileRoutes() []route.Route {
	return []route.Route{{Method: http.MethodGet, Path: "/api/export/files/:id", Role: auth.Viewer, Handler: s.download}}
}

// Params lists the query parameters of each export endpoint by path, for the spec test.
func Params() map[string][]string {
	out := map[string][]string{}
	s := &Service{}
	for _, r := range append(s.TabularRoutes(), s.PDFRoutes()...) {
		out[r.Path] = paramSet(strings.Split(r.Path, "/")[3]).Names()
	}
	out["/api/export/files/:id"] = nil
	return out
}

// paramSet is what an export of view takes: the common filters, and for the records one
// report too (report=N, the report's id as the export's "report" column and /api/reports
// give it: the records of that one report, as GET /api/reports/{id}/records lists them).
func paramSet(viewName string) apiparams.Set {
	if viewName == "records" {
		return apiparams.FilterSet.With("report")
	}
	return apiparams.FilterSet
}

// reportParam reads report=N into f; an unknown report is a 404, as its records list is.
func (s *Service) reportParam(c echo.Context, f *store.Filter) error {
	v := c.QueryParam("report")
	if v == "" {
		return nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("report", "want a report id, a whole number from 1")
	}
	if _, err := s.store.GetReport(c.Request().Context(), id); err != nil {
		return err
	}
	f.Report = id
	return nil
}

// Accepted is the answer to an export over the row limit.
type Accepted struct {
	TaskID    string `json:"task_id"`
	ExportID  string `json:"export_id"`
	Rows      int64  `json:"rows"`
	RowLimit  int64  `json:"row_limit"`
	StatusURL string `json:"status_url"`
}

func (s *Service) handler(viewName, format string) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := paramSet(viewName).Check(c); err != nil {
			return err
		}
		f, err := apiparams.Filter(c, s.now())
		if err != nil {
			return err
		}
		if err := s.reportParam(c, &f); err != nil {
			return err
		}
		ctx := c.Request().Context()
		n, err := s.rows(ctx, viewName, f)
		if err != nil {
			return err
		}
		if n > s.limit {
			taskID, err := s.enqueue(ctx, route.Principal(c).User.ID, viewName, format, f)
			if errors.Is(err, errNoQueue) {
				return echo.NewHTTPError(http.StatusServiceUnavailable, "this export has more rows than VIGIL_EXPORT_ROW_LIMIT and no worker queue is available to render it")
			}
			if err != nil {
				return err
			}
			id := strings.TrimPrefix(taskID, "export:render:")
			return c.JSON(http.StatusAccepted, Accepted{TaskID: taskID, ExportID: id, Rows: n, RowLimit: s.limit,
				StatusURL: "/tasks/status/" + url.PathEscape(taskID)})
		}
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, contentType(format))
		h.Set(echo.HeaderContentDisposition, attachment(Filename(viewName, format, s.now())))
		if _, err := s.Render(ctx, c.Response(), viewName, format, f); err != nil {
			if !c.Response().Committed {
				h.Del(echo.HeaderContentType)
				h.Del(echo.HeaderContentDisposition)
				return err
			}
			// Part of the file is out: end the connection rather than let the client take a
			// truncated file for a complete one.
			s.log.Error("export failed while streaming", "view", viewName, "format", format, "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}

func attachment(name string) string { return fmt.Sprintf("attachment; filename=%q", name) }

// download serves a rendered export to the user who asked for it, or an admin; to anyone else
// it does not exist (404, not 403: an export id tells nothing about whose it is).
func (s *Service) download(c echo.Context) error {
	id := c.Param("id")
	if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '2' && r <= '7') }) {
		return apiparams.BadParam("id", "want an export id as the task result gave it")
	}
	var row File
	err := s.db.WithContext(c.Request().Context()).Take(&row, "id = ?", id).Error
	p := route.Principal(c)
	if errors.Is(err, gorm.ErrRecordNotFound) || err == nil && row.UserID != p.User.ID && p.Role < auth.Admin {
		return echo.NewHTTPError(http.StatusNotFound, "export "+id+": not found, or expired and deleted")
	}
	if err != nil {
		return err
	}
	if row.Status != "done" {
		return echo.NewHTTPError(http.StatusConflict, "export "+id+": not rendered yet; follow its task at /tasks/status/"+url.PathEscape("export:render:"+id))
	}
	if s.now().Unix() >= row.ExpiresAt {
		return echo.NewHTTPError(http.StatusNotFound, "export "+id+": expired")
	}
	fh, err := os.Open(s.path(row.ID, row.Format))
	if errors.Is(err, os.ErrNotExist) {
		return echo.NewHTTPError(http.StatusNotFound, "export "+id+": expired and deleted")
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, contentType(row.Format))
	h.Set(echo.HeaderContentDisposition, attachment(row.Filename))
	h.Set("Expires", time.Unix(row.ExpiresAt, 0).UTC().Format(http.TimeFormat))
	http.ServeContent(c.Response(), c.Request(), row.Filename, time.Unix(row.CreatedAt, 0), fh)
	return nil
}
