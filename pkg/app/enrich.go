package app

import (
	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/senders"
)

// buildEnrich builds sender intelligence: the GeoIP databases, the DNS resolver, the
// enrichment service and the named-sender catalog. A missing resolver configuration (no
// /etc/resolv.conf) is logged, not fatal: enrichment then records DNS as unavailable.
func (a *App) buildEnrich() error {
	log := a.Log.With("component", "enrich")
	c := a.Cfg.Enrich
	sv, err := senders.New(a.Store, a.Log.With("component", "senders"))
	if err != nil {
		return err
	}
	a.Senders = sv
	sv.SetRebuildGap(c.SenderRebuildGap)
	res, err := enrich.NewResolver(c.DNSResolver, c.DNSTimeout)
	if err != nil {
		log.Warn("reverse DNS disabled", "err", err)
		res = nil
	}
	g := geo.Open(geo.Config{CityPath: c.GeoIPCityDB, ASNPath: c.GeoIPASNDB, CheckEvery: c.GeoIPCheck}, log)
	if city, asn := g.Loaded(); !city || !asn {
		log.Info(enrich.GeoHint)
	}
	var enq enrich.Enqueuer
	if a.Client != nil {
		enq = a.Client
		sv.SetEnqueuer(a.Client)
	}
	a.Enrich = enrich.New(enrich.Deps{Store: a.Store, Resolver: res, Geo: g, Senders: sv, Enqueuer: enq, Log: log,
		OnEnriched: sv.Enriched,
		Config:     enrich.Config{Concurrency: c.DNSConcurrency, BatchSize: c.BatchSize, PositiveTTL: c.PositiveTTL, NegativeTTL: c.NegativeTTL, GeoTTL: c.GeoTTL}})
	return nil
}
