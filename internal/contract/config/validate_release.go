// Validation of one release.

package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// validate checks one release's fields.
//
//nolint:funlen // one check per field, read top to bottom like the config reference
func (r Release) validate(field string) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, sub, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(r.Name) {
		add("name", "%q must be 1–63 characters of a-z 0-9 . _ - starting with a letter or digit", r.Name)
	}
	switch {
	case r.Env == "":
		add("env", "is empty; name the environment matched traffic goes to, e.g. gray")
	case r.Env == Stable:
		add("env", "%q is where unmatched traffic already goes; name another environment", r.Env)
	case !envRE.MatchString(r.Env):
		add("env", "%q must be 1–31 characters of a-z 0-9 -", r.Env)
	}
	if err := checkPercent(r.Percent); err != nil {
		add("percent", "%v", err)
	}
	if err := checkPercent(r.TrafficPercent); err != nil {
		add("traffic_percent", "%v", err)
	}
	switch r.State {
	case StateActive, StateFrozen, StateKilled:
	default:
		add("state", "%q is not one of active, frozen, killed", r.State)
	}
	for i, st := range r.Schedule {
		sub := fmt.Sprintf("schedule[%d]", i)
		if st.At.IsZero() {
			add(sub+".at", "is missing; write an RFC 3339 time like 2026-11-21T10:00:00Z")
		} else if err := checkRFC3339(st.At); err != nil {
			add(sub+".at", "%v", err)
		}
		if err := checkPercent(st.Percent); err != nil {
			add(sub+".percent", "%v", err)
		}
		if i > 0 && !st.At.After(r.Schedule[i-1].At) {
			add(sub+".at", "%s is not after schedule[%d].at", st.At.Format(time.RFC3339), i-1)
		}
	}
	for i, s := range r.Blacklist {
		if strings.TrimSpace(s) == "" {
			add(fmt.Sprintf("blacklist[%d]", i), "is empty")
		}
	}
	for i, s := range r.Whitelist {
		if strings.TrimSpace(s) == "" {
			add(fmt.Sprintf("whitelist[%d]", i), "is empty")
		}
	}
	for i, m := range r.Claims {
		sub := fmt.Sprintf("claims[%d]", i)
		if strings.TrimSpace(m.Claim) == "" {
			add(sub+".claim", "is empty")
		}
		if len(m.In) == 0 {
			add(sub+".in", "is empty; list the values that admit")
		}
	}
	for i, c := range r.CIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			add(fmt.Sprintf("cidrs[%d]", i), "%q is not a CIDR range like 10.0.0.0/8", c)
		}
	}
	for i, h := range r.Headers {
		sub := fmt.Sprintf("headers[%d]", i)
		name := h.Name
		switch {
		case name == "":
			add(sub+".name", "is empty")
		case name != strings.ToLower(name):
			add(sub+".name", "%q must be lower case (Envoy forwards header names lower-cased)", name)
		case strings.HasPrefix(name, wire.HeaderPrefix):
			add(sub+".name", "%q is a graymesh header; matching on it would let clients choose their environment", name)
		case name == "authorization" || name == "cookie":
			add(sub+".name", "%q carries credentials; match on verified claims instead", name)
		}
		set := 0
		for _, v := range []string{h.Exact, h.Prefix, h.Regex} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			add(sub, "set exactly one of exact, prefix, regex")
		}
		if h.Regex != "" {
			if _, err := regexp.Compile(h.Regex); err != nil {
				add(sub+".regex", "%v", err)
			}
		}
	}
	return errs
}
