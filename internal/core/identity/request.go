package identity

import "strings"

// Reading the caller from a request: the bearer token, the token and
// device cookies.

// FromRequest reads the caller from the Authorization and Cookie header
// values. A token in the Authorization header wins over the token cookie.
func (v *Verifier) FromRequest(authorization, cookie string) Caller {
	var c Caller
	if v.deviceCookie != "" {
		c.DeviceID = CookieValue(cookie, v.deviceCookie)
	}
	token := bearer(authorization)
	if token == "" && v.cookie != "" {
		token = CookieValue(cookie, v.cookie)
	}
	if token == "" {
		return c
	}
	id, err := v.Verify(token)
	if err != nil {
		c.Problem = Problem(err)
		return c
	}
	c.Subject, c.Claims = id.Subject, id.Claims
	c.Issuer, c.KeyID, c.KeySource, c.Expiry = id.Issuer, id.KeyID, id.KeySource, id.Expiry
	return c
}

func bearer(h string) string {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// CookieValue returns the value of the named cookie in a Cookie header, or
// "" when it is absent.
func CookieValue(header, name string) string {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			return strings.Trim(val, `"`)
		}
	}
	return ""
}
