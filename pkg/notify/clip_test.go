package notify

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg…"},
		// "é" is two bytes: the cut backs off to the start of a character.
		{"ééééééé", 10, "ééé…"},
		{"abc", 2, "…"},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// A peer's reply of any size is kept as one bounded line of valid UTF-8 (clip used to drop one
// character at a time, re-encoding the rest each time: a 1 MB reply took minutes).
func TestDeliveryErrorIsOneBoundedLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  string
		want string // prefix
	}{
		{"multi-line SMTP reply", "smtp: 554 5.7.1 rejected\r\n554-second line\n\tthird", "smtp: 554 5.7.1 rejected 554-second line third"},
		{"invalid UTF-8", "bad \xff\xfe byte", "bad \uFFFD byte"},
		{"huge", "550 " + strings.Repeat("x", 1<<20), "550 xxx"},
	} {
		got := deliveryError(errors.New(tc.err))
		if !strings.HasPrefix(got, tc.want) || len(got) > maxDeliveryError || !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n\t") {
			t.Errorf("%s: %q (%d bytes)", tc.name, got[:min(len(got), 80)], len(got))
		}
	}
}
