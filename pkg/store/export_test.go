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
