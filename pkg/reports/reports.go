package reports

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/store"
)

// ReportView is a report as the API shows it.
type ReportView struct {
	ID               int64      `json:"id"`
	IngestID         int64      `json:"ingest_id"`
	OrgName          string     `json:"org_name"`
	Email            string     `json:"email"`
	ExtraContactInfo string     `json:"extra_contact_info"`
	ReportID         string     `json:"report_id"`
	DateBegin        time.Time  `json:"date_begin"`
	DateEnd          time.Time  `json:"date_end"`
	Domain           string     `json:"domain"`
	Policy           PolicyView `json:"policy"`
	Version          string     `json:"version"`
	Namespace        string     `json:"namespace"`
	Generator        string     `json:"generator"`
	Errors           []string   `json:"errors"`
	RecordCount      int        `json:"record_count"`
	MessageCount     int64      `json:"message_count"`
	Warnings         []string   `json:"warnings"`
	CreatedAt        time.Time  `json:"created_at"`
}

// PolicyView is the policy published for the domain, as the report states it.
type PolicyView struct {
	P               string `json:"p"`
	SP              string `json:"sp"`
	NP              string `json:"np"`
	ADKIM           string `json:"adkim"`
	ASPF            string `json:"aspf"`
	Pct             *int   `json:"pct"`
	FO              string `json:"fo"`
	Testing         string `json:"testing"`
	DiscoveryMethod string `json:"discovery_method"`
}

// RecordView is one record of a report.
type RecordView struct {
	ID           int64           `json:"id"`
	SourceIP     string          `json:"source_ip"`
	Count        int64           `json:"count"`
	Disposition  string          `json:"disposition"`
	DKIM         string          `json:"dkim"`
	SPF          string          `json:"spf"`
	Reasons      json.RawMessage `json:"reasons"`
	HeaderFrom   string          `json:"header_from"`
	EnvelopeFrom string          `json:"envelope_from"`
	EnvelopeTo   string          `json:"envelope_to"`
	DKIMResults  json.RawMessage `json:"dkim_results"`
	SPFResults   json.RawMessage `json:"spf_results"`
	// What enrichment knows of the source (pkg/enrich's cache, the sender named by the
	// current catalog); null while unknown or not enriched yet.
	PTR     *string `json:"ptr"`
	Sender  *string `json:"sender"`
	ASN     *int64  `json:"asn"`
	ASOrg   *string `json:"as_org"`
	Country *string `json:"country"`
}

func strList(s string) []string {
	out := []string{}
	_ = json.Unmarshal([]byte(s), &out) // written by store.jsonStrings; empty on damage
	return out
}

func reportView(r store.Report) ReportView {
	return ReportView{
		ID: r.ID, IngestID: r.IngestID, OrgName: r.OrgName, Email: r.Email, ExtraContactInfo: r.ExtraContactInfo,
		ReportID: r.ReportID, DateBegin: r.DateBegin.UTC(), DateEnd: r.DateEnd.UTC(), Domain: r.Domain,
		Policy: PolicyView{P: r.PolicyP, SP: r.PolicySP, NP: r.PolicyNP, ADKIM: r.PolicyADKIM, ASPF: r.PolicyASPF,
			Pct: r.PolicyPct, FO: r.PolicyFO, Testing: r.PolicyTesting, DiscoveryMethod: r.PolicyDiscoveryMethod},
		Version: r.Version, Namespace: r.Namespace, Generator: r.Generator, Errors: strList(r.Errors),
		RecordCount: r.RecordCount, MessageCount: r.MessageCount, Warnings: strList(r.Warnings), CreatedAt: r.CreatedAt.UTC(),
	}
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("[]")
	}
	return json.RawMessage(s)
}

func (a *API) listReports(c echo.Context) error {
	f, err := apiparams.Filter(c, a.now())
	if err != nil {
		return err
	}
	p, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	order, err := store.ParseReportOrder(c.QueryParam("sort"))
	if err != nil {
		return apiparams.BadParam("sort", "want one of date_begin, domain, org_name, messages, each optionally prefixed with - for descending")
	}
	rows, total, err := a.Store.ListReportsOrdered(c.Request().Context(), f, p, order)
	if err != nil {
		return err
	}
	items := make([]ReportView, len(rows))
	for i, r := range rows {
		items[i] = reportView(r)
	}
	return c.JSON(http.StatusOK, apiparams.List[ReportView]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}

func (a *API) getReport(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	r, err := a.Store.GetReport(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, reportView(r))
}

func (a *API) listRecords(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	p, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	f, err := apiparams.Filter(c, a.now())
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := a.Store.GetReport(ctx, id); err != nil {
		return err
	}
	rows, total, err := a.Store.ListRecords(ctx, id, f, p)
	if err != nil {
		return err
	}
	items := make([]RecordView, len(rows))
	for i, r := range rows {
		items[i] = RecordView{ID: r.ID, SourceIP: r.SourceIP, Count: r.Count, Disposition: r.Disposition, DKIM: r.DKIM, SPF: r.SPF,
			Reasons: rawJSON(r.Reasons), HeaderFrom: r.HeaderFrom, EnvelopeFrom: r.EnvelopeFrom, EnvelopeTo: r.EnvelopeTo,
			DKIMResults: rawJSON(r.DKIMResults), SPFResults: rawJSON(r.SPFResults)}
	}
	if err := a.describeRecords(ctx, items); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[RecordView]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}

// describeRecords fills the enrichment fields of a page of records (Deps.Describe; without it
// they stay null).
func (a *API) describeRecords(ctx context.Context, items []RecordView) error {
	if a.Describe == nil || len(items) == 0 {
		return nil
	}
	ips := make([]netip.Addr, 0, len(items))
	for _, it := range items {
		if ip, err := netip.ParseAddr(it.SourceIP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	infos, err := a.Describe(ctx, ips)
	if err != nil {
		return err
	}
	for i := range items {
		ip, err := netip.ParseAddr(items[i].SourceIP)
		if err != nil {
			continue
		}
		if in, ok := infos[ip.Unmap()]; ok {
			it := &items[i]
			it.PTR, it.Sender, it.ASN, it.ASOrg, it.Country = in.PTR, in.Sender, in.ASN, in.ASOrg, in.Country
		}
	}
	return nil
}

// DomainView is a policy domain with its report volume.
type DomainView struct {
	Domain       string    `json:"domain"`
	ReportCount  int64     `json:"report_count"`
	MessageCount int64     `json:"message_count"`
	FirstReport  time.Time `json:"first_report"`
	LastReport   time.Time `json:"last_report"`
}

func (a *API) listDomains(c echo.Context) error {
	f, err := apiparams.Filter(c, a.now())
	if err != nil {
		return err
	}
	p, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	all, err := a.Store.ListDomains(c.Request().Context(), f)
	if err != nil {
		return err
	}
	items := []DomainView{}
	for i := p.Number*p.Size - p.Size; i < len(all) && i < p.Number*p.Size; i++ {
		d := all[i]
		items = append(items, DomainView{Domain: d.Domain, ReportCount: d.ReportCount, MessageCount: d.MessageCount, FirstReport: d.FirstReport, LastReport: d.LastReport})
	}
	return c.JSON(http.StatusOK, apiparams.List[DomainView]{Items: items, Total: int64(len(all)), Page: p.Number, PageSize: p.Size})
}
