package reports

import (
	"bufio"
	_ "embed"
	"fmt"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// OpenAPI documents GET /api/ingests and GET /api/ingests/{id}/raw (pkg/httpapi merges it;
// the reports, records and domains are in its base document).
//
//go:embed openapi.json
var OpenAPI []byte

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
			return apiparams.BadParam("status", "want one of %s", strings.Join(ingestStatuses, ", "))
		}
		f.Status = v
	}
	if v := strings.ToLower(strings.TrimSpace(c.QueryParam("source"))); v != "" {
		if !sourceName.MatchString(v) {
			return apiparams.BadParam("source", "want a source name such as upload, import or imap")
		}
		f.Source = v
	}
	var err error
	if f.Start, f.End, err = apiparams.Window(c, a.now()); err != nil {
		return err
	}
	p, err := apiparams.Page(c)
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
	views := make([]*IngestView, len(items))
	for i := range items {
		views[i] = &items[i]
	}
	if err := a.kindReportIDs(ctx, views); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[IngestView]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}

// rawCSP replaces the API's policy on a raw file: should a browser ever render one despite
// the attachment disposition and nosniff, it runs nothing and loads nothing.
const rawCSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

// rawIngest is GET /api/ingests/{id}/raw: the stored original bytes of a received file, for an
// admin to re-check what a reporter sent. The bytes are attacker-controlled, so they are always
// an attachment under a sanitised name, typed by their content (not by the name the sender
// chose), with nosniff and a sandboxing CSP: never rendered inline by the dashboard's origin.
func (a *API) rawIngest(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ing, err := a.Store.GetIngest(ctx, id)
	if err != nil {
		return err
	}
	raw, err := a.Store.RawFile(ctx, id)
	if err != nil {
		return err
	}
	r, err := ingest.Original(raw)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(4096) // a short file or a read error shows in the copy below
	// Who read which original is recorded: a failure report's file can hold a person's message.
	a.record(c, audit.Entry{Action: audit.RawDownload, Target: fmt.Sprintf("ingest:%d", id), Details: map[string]any{"filename": ing.Filename}})
	h := c.Response().Header()
	h.Set(echo.HeaderContentSecurityPolicy, rawCSP)
	h.Set(echo.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": safeFilename(ing.Filename, id)}))
	return c.Stream(http.StatusOK, unwrap.MediaType(head), br)
}

// safeFilename is a download name built from a sender-chosen file name: its last path
// element, with only letters, digits, dot, dash and underscore kept (others become "_"), no
// leading dot, at most 100 bytes; ingest-{id} when nothing is left. Paths, quotes, CR/LF and
// non-ASCII never reach the Content-Disposition header or the user's disk.
func safeFilename(name string, id int64) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), "._")
	if len(out) > 100 {
		out = out[len(out)-100:]
	}
	if strings.Trim(out, "_.-") == "" {
		return fmt.Sprintf("ingest-%d", id)
	}
	return out
}
