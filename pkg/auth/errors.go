package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors the HTTP layer maps to status codes (problem.go).
var (
	// ErrInvalidCredentials: wrong e-mail or password, or an inactive account. One error for
	// all three so a caller cannot tell which (SECURITY-CASES D.29).
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrUnauthenticated: a token or key that is missing, malformed, expired or revoked.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrNotFound: no such user or key, or one the caller may not see.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an e-mail already in use, or a change that would leave no active admin.
	ErrConflict = errors.New("conflict")
	// ErrForbidden: a role the caller may not grant.
	ErrForbidden = errors.New("forbidden")
)

// InvalidError is a bad input value; Field names it so the 400's detail can.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
