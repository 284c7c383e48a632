package store

import "context"

// MigrateTo applies the migrations up to version (tests of a migration's data handling).
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	p, err := s.goose()
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// SetStreamPages sets EachRecord's page of reports and chunk of records, returning a restore.
func SetStreamPages(heads int, records int64) func() {
	h, r := headPage, recordChunk
	headPage, recordChunk = heads, records
	return func() { headPage, recordChunk = h, r }
}
