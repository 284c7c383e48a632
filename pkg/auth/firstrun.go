package auth

import (
	"context"
	"errors"
)

// PasswordIs reports whether password is still the password of the active account email,
// without a login (no session, no throttle). The embedded default uses it at start-up to
// forget the generated first-admin password it kept in the data dir once it was changed.
func (s *Service) PasswordIs(ctx context.Context, email, password string) (bool, error) {
	_, err := s.authenticate(ctx, email, password)
	if errors.Is(err, ErrInvalidCredentials) {
		return false, nil
	}
	return err == nil, err
}
