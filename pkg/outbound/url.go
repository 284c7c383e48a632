package outbound

import (
	"fmt"
	"net/url"
)

// parseURL accepts an absolute http(s) URL with a host and no credentials in it (they would
// be logged and shown; a receiver's secret belongs in the channel's secret).
func parseURL(raw string) (*url.URL, error) {
	if len(raw) > 2048 {
		return nil, fmt.Errorf("URL longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("want an http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("the URL has no host")
	}
	if u.User != nil {
		return nil, fmt.Errorf("the URL must not carry a user name or password")
	}
	return u, nil
}
