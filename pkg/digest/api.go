package digest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Routes are the subscription endpoints: any user manages their own digests; an admin sees
// and may delete everyone's.
func (s *Service) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/digests", Role: auth.Viewer, Handler: s.hList},
		{Method: http.MethodPost, Path: "/api/digests", Role: auth.Viewer, Handler: s.hCreate},
		{Method: http.MethodDelete, Path: "/api/digests/:id", Role: auth.Viewer, Handler: s.hDelete},
	}
}

// View is a subscription as the API shows it.
type View struct {
	ID        int64     `json:"id"`
	UserID    int64     `json:"user_id"`
	Email     string    `json:"email"`
	Frequency string    `json:"frequency"`
	Domains   []string  `json:"domains"`
	Formats   []string  `json:"formats"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	// NextPeriod is the period the next digest covers, sent soon after it ends.
	NextPeriodStart time.Time `json:"next_period_start"`
	NextPeriodEnd   time.Time `json:"next_period_end"`
}

func (s *Service) view(sub Subscription) View {
	d, f := list(sub.Domains), list(sub.Formats)
	if d == nil {
		d = []string{}
	}
	_, curEnd := Period(sub.Frequency, s.now())
	nextEnd := curEnd.AddDate(0, 1, 0)
	if sub.Frequency == "weekly" {
		nextEnd = curEnd.AddDate(0, 0, 7)
	}
	return View{ID: sub.ID, UserID: sub.UserID, Email: sub.Email, Frequency: sub.Frequency, Domains: d, Formats: f, Enabled: sub.Enabled,
		CreatedAt: time.Unix(sub.CreatedAt, 0).UTC(), NextPeriodStart: curEnd, NextPeriodEnd: nextEnd}
}

func (s *Service) hList(c echo.Context) error {
	if err := apiparams.Declare().Check(c); err != nil {
		return err
	}
	p := route.Principal(c)
	q := s.db.WithContext(c.Request().Context()).Order("id")
	if p.Role < auth.Admin {
		q = q.Where("user_id = ?", p.User.ID)
	}
	var subs []Subscription
	if err := q.Limit(1000).Find(&subs).Error; err != nil {
		return err
	}
	items := make([]View, len(subs))
	for i, sub := range subs {
		items[i] = s.view(sub)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items, "total": len(items), "page": 1, "page_size": max(len(items), 1)})
}

// CreateRequest subscribes the caller.
type CreateRequest struct {
	Frequency string   `json:"frequency"`
	Domains   []string `json:"domains"`
	Formats   []string `json:"formats"`
	Email     string   `json:"email"`
}

func (s *Service) hCreate(c echo.Context) error {
	if err := apiparams.Declare().Check(c); err != nil {
		return err
	}
	var req CreateRequest
	if err := apiparams.ReadOptionalJSON(c, &req); err != nil {
		return err
	}
	p := route.Principal(c)
	if !slices.Contains(Frequencies, req.Frequency) {
		return apiparams.BadParam("frequency", "want weekly or monthly")
	}
	if len(req.Formats) == 0 {
		req.Formats = []string{"pdf"}
	}
	for _, f := range req.Formats {
		if !slices.Contains(Formats, f) {
			return apiparams.BadParam("formats", "want a list of pdf and/or xlsx")
		}
	}
	slices.Sort(req.Formats)
	req.Formats = slices.Compact(req.Formats)
	if len(req.Domains) > MaxDomains {
		return apiparams.BadParam("domains", "at most %d domains (an empty list means all)", MaxDomains)
	}
	for i, d := range req.Domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d == "" || len(d) > 253 || strings.ContainsAny(d, " \t\r\n/\\@") {
			return apiparams.BadParam("domains", "want domain names such as example.com")
		}
		req.Domains[i] = d
	}
	slices.Sort(req.Domains)
	req.Domains = slices.Compact(req.Domains)
	// Digests go to the subscriber's own address; only an admin may send one elsewhere (a
	// viewer must not be able to mail the organisation's DMARC data to any address).
	if req.Email == "" {
		req.Email = p.User.Email
	}
	if !validEmail(req.Email) {
		return apiparams.BadParam("email", "want one e-mail address such as postmaster@example.com")
	}
	if !strings.EqualFold(req.Email, p.User.Email) && p.Role < auth.Admin {
		return echo.NewHTTPError(http.StatusForbidden, "digests go to your own address; only an admin may subscribe another")
	}
	dj, _ := json.Marshal(req.Domains)
	fj, _ := json.Marshal(req.Formats)
	sub := Subscription{UserID: p.User.ID, Email: req.Email, Frequency: req.Frequency, Domains: string(dj), Formats: string(fj),
		Enabled: true, CreatedAt: s.now().Unix()}
	if err := s.db.WithContext(c.Request().Context()).Create(&sub).Error; err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, s.view(sub))
}

func (s *Service) hDelete(c echo.Context) error {
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	p := route.Principal(c)
	var sub Subscription
	err = s.db.WithContext(c.Request().Context()).Take(&sub, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || err == nil && sub.UserID != p.User.ID && p.Role < auth.Admin {
		return echo.NewHTTPError(http.StatusNotFound, "digest subscription not found")
	}
	if err != nil {
		return err
	}
	err = s.db.WithContext(c.Request().Context()).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("subscription_id = ?", id).Delete(&delivery{}).Error; err != nil {
			return err
		}
		return tx.Delete(&Subscription{}, id).Error
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
