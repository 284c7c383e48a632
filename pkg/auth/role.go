package auth

import (
	"encoding/json"
	"fmt"
)

// Role orders what a principal may do: each role may do everything the roles below it may.
type Role int

// Roles, lowest first. Public is the "role" of a route that needs no credentials.
const (
	Public Role = iota
	Viewer
	Analyst
	Admin
)

var roleNames = [...]string{Public: "public", Viewer: "viewer", Analyst: "analyst", Admin: "admin"}

func (r Role) String() string {
	if r < Public || r > Admin {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads "viewer", "analyst" or "admin" (not "public": nobody holds it).
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Admin; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q: want viewer, analyst or admin", s)
}

// MarshalJSON writes the role's name.
func (r Role) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON reads a role's name.
func (r *Role) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("role: want a string")
	}
	v, err := ParseRole(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}
