// Package identity reads who is calling from a request's Authorization
// header or cookies. Only a token that verifies against a configured key,
// with an allowed algorithm and an unexpired exp, yields a subject; anything
// else leaves the caller anonymous with the reason recorded.
package identity

import "time"

// Caller is what the request says about who sent it.
type Caller struct {
	// Subject and Claims come from a verified token only.
	Subject string
	Claims  map[string][]string
	// DeviceID is the anonymous bucketing key from the device cookie.
	DeviceID string
	// Problem is why a presented token was not accepted ("" when none was
	// presented or it verified).
	Problem string
	// Issuer, KeyID and KeySource say what verified the token (see
	// Identity).
	Issuer, KeyID, KeySource string
	// Expiry is when the verified token expires.
	Expiry time.Time
}

// Identity is a verified token's content.
type Identity struct {
	Subject string
	Claims  map[string][]string
	Expiry  time.Time
	// Issuer is the configured issuer that verified the token ("" when
	// the config names none); KeyID and Algorithm the key's kid and alg;
	// KeySource where the key is configured ("identity.jwt.keys[0]",
	// "identity.jwt.jwks_file") or the URL of the fetched key set.
	Issuer, KeyID, Algorithm, KeySource string
}
