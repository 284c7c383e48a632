package analytics

import (
	"context"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// Query answers the rollup questions in Go, for renderers (pkg/export's files, pkg/digest's
// e-mails) that need the same numbers the endpoints answer, under the same filters. Answers
// are computed, not cached: a file is made once.
type Query struct {
	a     *API
	s     scope
	today int32
}

// Query resolves the filters once for several questions.
func (a *API) Query(ctx context.Context, f store.Filter) (*Query, error) {
	s, err := a.eng.resolve(ctx, f)
	if err != nil {
		return nil, err
	}
	return &Query{a: a, s: s, today: rollup.DayOf(a.now())}, nil
}

// Summary is /api/rollup/summary.
func (q *Query) Summary(ctx context.Context) (Summary, error) { return q.a.eng.summary(ctx, q.s) }

// Breakdown is /api/rollup/alignment-breakdown.
func (q *Query) Breakdown(ctx context.Context) (Breakdown, error) { return q.a.eng.breakdown(ctx, q.s) }

// Alignment is /api/rollup/alignment.
func (q *Query) Alignment(ctx context.Context) (Alignment, error) { return q.a.eng.alignment(ctx, q.s) }

// Timeline is /api/rollup/timeline at interval (day, week, month).
func (q *Query) Timeline(ctx context.Context, interval string) (Timeline, error) {
	return q.a.eng.timeline(ctx, q.s, interval, q.today)
}

// Sources is one page of /api/rollup/sources (limit not capped here), enrichment included.
func (q *Query) Sources(ctx context.Context, page, limit int) (apiparams.List[Source], error) {
	out, err := q.a.eng.sources(ctx, q.s, page, limit)
	if err == nil {
		err = q.a.describeSources(ctx, out.Items)
	}
	return out, err
}

// TopOrganizations is /api/rollup/top-organizations.
func (q *Query) TopOrganizations(ctx context.Context, page, limit int) (apiparams.List[Organization], error) {
	return q.a.eng.topOrganizations(ctx, q.s, page, limit)
}

// Policy is /api/rollup/policy.
func (q *Query) Policy(ctx context.Context, page, size int) (apiparams.List[PolicyDomain], error) {
	return q.a.eng.policy(ctx, q.s, page, size)
}
