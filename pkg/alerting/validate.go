package alerting

import (
	"fmt"
	"strings"
)

// The checks rules and channels (pkg/notify) share: both are named objects an admin creates
// and PATCHes, whose type (a rule's, a channel's kind) is chosen once.

// Invalid is an ErrInvalid (422) naming the field and what it wants.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func invalid(format string, args ...any) error { return Invalid(format, args...) }

// SetName applies the name of a create or PATCH body to dst: 1 to 200 characters once
// trimmed, required on create, unchanged when left out of a PATCH.
func SetName(dst, in *string, create bool) error {
	if in == nil {
		if create {
			return Invalid("name: required")
		}
		return nil
	}
	n := strings.TrimSpace(*in)
	if n == "" || len(n) > 200 {
		return Invalid("name: want 1 to 200 characters")
	}
	*dst = n
	return nil
}

// SetFixed applies the field that says what an object is (a rule's type, a channel's
// kind): given on create, never changed by a PATCH (what: "rule", "channel").
func SetFixed(field, what string, dst, in *string, create bool) error {
	if in == nil {
		return nil
	}
	if !create && *in != *dst {
		return Invalid("%s: cannot change; create another %s", field, what)
	}
	*dst = *in
	return nil
}

// NameTaken turns the failure of a write on the names' unique constraint into an
// ErrConflict (409) saying the name is taken (what: "rule", "channel"); any other error is
// returned as nil.
func NameTaken(err error, what, name string) error {
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "unique") || strings.Contains(m, "duplicate key") {
		return fmt.Errorf("%w: a %s named %q exists", ErrConflict, what, name)
	}
	return nil
}
