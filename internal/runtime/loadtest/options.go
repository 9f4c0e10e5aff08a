package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// withDefaults fills the fields whose zero value means "the default".
func (o Options) withDefaults() Options {
	if o.MarkerHeader == "" {
		o.MarkerHeader = wire.HeaderStressMarker
	}
	if o.AbortWindow == 0 {
		o.AbortWindow = DefaultAbortWindow
	}
	if o.AbortMinRequests == 0 {
		o.AbortMinRequests = DefaultAbortMinRequests
	}
	if o.MaxRate == 0 {
		o.MaxRate = DefaultMaxRate
	}
	return o
}

// validate refuses options that would send unbounded, misdirected or
// malformed load; each error names the field to change.
func (o Options) validate() error {
	if err := o.validateTarget(); err != nil {
		return err
	}
	if err := o.validateRates(); err != nil {
		return err
	}
	if err := o.validateTimes(); err != nil {
		return err
	}
	if err := o.validateAbort(); err != nil {
		return err
	}
	return o.validateHeaders()
}

// validateTarget refuses a Target that is not an http(s) URL, or whose
// host is not loopback unless AllowRemote says so: load sent to the wrong
// place by a typo is an outage someone else has.
func (o Options) validateTarget() error {
	u, err := url.Parse(o.Target)
	if err != nil {
		return fmt.Errorf("loadtest: Target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("loadtest: Target %q is not an http:// or https:// URL with a host", o.Target)
	}
	if !o.AllowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("loadtest: Target host %s is not a loopback address (127.0.0.0/8, ::1, localhost); set AllowRemote to load a remote edge", u.Hostname())
	}
	return nil
}

// isLoopback reports whether host names this machine without asking a
// resolver: a loopback IP or "localhost".
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateRates keeps both rates within MaxRate.
func (o Options) validateRates() error {
	switch {
	case o.MaxRate < 0:
		return fmt.Errorf("loadtest: MaxRate must not be negative, got %g", o.MaxRate)
	case o.Rate <= 0:
		return fmt.Errorf("loadtest: Rate must be > 0 requests/s, got %g", o.Rate)
	case o.Rate > o.MaxRate:
		return fmt.Errorf("loadtest: Rate %g/s is above MaxRate %g/s; raise MaxRate to send more", o.Rate, o.MaxRate)
	case o.BaselineRate < 0:
		return fmt.Errorf("loadtest: BaselineRate must not be negative, got %g", o.BaselineRate)
	case o.BaselineRate > o.MaxRate:
		return fmt.Errorf("loadtest: BaselineRate %g/s is above MaxRate %g/s; raise MaxRate to send more", o.BaselineRate, o.MaxRate)
	}
	return nil
}

// validateTimes keeps the run within MaxDuration and the ramp within the
// run.
func (o Options) validateTimes() error {
	switch {
	case o.Duration <= 0 || o.Duration > MaxDuration:
		return fmt.Errorf("loadtest: Duration must be > 0 and at most %s, got %s", MaxDuration, o.Duration)
	case o.RampUp < 0 || o.RampUp > o.Duration:
		return fmt.Errorf("loadtest: RampUp must be between 0 and Duration (%s), got %s", o.Duration, o.RampUp)
	}
	return nil
}

// validateAbort checks the abort rule's fields.
func (o Options) validateAbort() error {
	switch {
	case o.AbortErrorRate < 0 || o.AbortErrorRate > 1:
		return fmt.Errorf("loadtest: AbortErrorRate must be between 0 and 1, got %g", o.AbortErrorRate)
	case o.AbortWindow < 0:
		return fmt.Errorf("loadtest: AbortWindow must not be negative, got %s", o.AbortWindow)
	case o.AbortMinRequests < 0:
		return fmt.Errorf("loadtest: AbortMinRequests must not be negative, got %d", o.AbortMinRequests)
	}
	return nil
}

// validateHeaders refuses a header every request would fail to send, an
// empty marker (the shadow side would be unmarked traffic) and the marker
// among the extra headers (the baseline would be marked too).
func (o Options) validateHeaders() error {
	if o.Marker == "" {
		return errors.New("loadtest: Marker is empty; shadow requests must carry the stress marker")
	}
	if err := checkHeader("MarkerHeader/Marker", o.MarkerHeader, o.Marker); err != nil {
		return err
	}
	for name, value := range o.Headers {
		if http.CanonicalHeaderKey(name) == http.CanonicalHeaderKey(o.MarkerHeader) {
			return fmt.Errorf("loadtest: Headers has the marker header %s, which would mark the baseline too; the marker is Marker", name)
		}
		if err := checkHeader("Headers", name, value); err != nil {
			return err
		}
	}
	return nil
}

// checkHeader refuses what Go's HTTP client would refuse on every request:
// a name that is not an HTTP token, a value with control characters.
func checkHeader(field, name, value string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenRune(r) }) {
		return fmt.Errorf("loadtest: %s: %q is not a valid header name", field, name)
	}
	if strings.ContainsFunc(value, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }) {
		return fmt.Errorf("loadtest: %s: the value of %s has a control character", field, name)
	}
	return nil
}

// isTokenRune reports whether r may appear in an HTTP token (RFC 9110).
func isTokenRune(r rune) bool {
	return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
