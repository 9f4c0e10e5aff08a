package lane

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// memberVersion prefixes membership tokens.
const memberVersion = "m1"

// Member records that a subject was admitted to a release's environment:
// existing gray state wins over a re-evaluation of the rules.
type Member struct {
	Release  string
	Env      string
	Version  string
	Admitted time.Time
	Expires  time.Time
}

// SignMember returns a membership token for subject, valid for ttl. The
// subject is bound by the MAC but not written into the token, so a token
// is useless to anyone else and reveals nothing about whom it names.
func (s *Signer) SignMember(release, env, configVersion, subject string, admitted time.Time, ttl time.Duration) string {
	payload := memberVersion + ":" + release + ":" + env + ":" + configVersion + ":" +
		strconv.FormatInt(admitted.Unix(), 10) + ":" + strconv.FormatInt(admitted.Add(ttl).Unix(), 10)
	return payload + ":" + mac(s.macKeys[0], payload+"\x00"+subject)
}

// sigBytes is the truncated HMAC-SHA256 length of a membership token:
// 128 bits.
const sigBytes = 16

func mac(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:sigBytes])
}

// signedByAny reports whether sig is payload's MAC under any mesh key.
func (s *Signer) signedByAny(payload, sig string) bool {
	for _, k := range s.macKeys {
		if hmac.Equal([]byte(sig), []byte(mac(k, payload))) {
			return true
		}
	}
	return false
}

// VerifyMember checks a membership token for subject at now, signed with
// the mesh key or one of the verify keys.
func (s *Signer) VerifyMember(token, subject string, now time.Time) (Member, error) {
	if len(token) > 512 || subject == "" {
		return Member{}, ErrMalformed
	}
	i := strings.LastIndexByte(token, ':')
	if i < 0 {
		return Member{}, ErrMalformed
	}
	payload, sig := token[:i], token[i+1:]
	parts := strings.Split(payload, ":")
	if len(parts) != 6 || parts[0] != memberVersion || parts[1] == "" || parts[2] == "" {
		return Member{}, ErrMalformed
	}
	if !s.signedByAny(payload+"\x00"+subject, sig) {
		return Member{}, ErrSignature
	}
	admitted, err1 := strconv.ParseInt(parts[4], 10, 64)
	exp, err2 := strconv.ParseInt(parts[5], 10, 64)
	if err1 != nil || err2 != nil {
		return Member{}, ErrMalformed
	}
	m := Member{Release: parts[1], Env: parts[2], Version: parts[3], Admitted: time.Unix(admitted, 0), Expires: time.Unix(exp, 0)}
	if !now.Before(m.Expires) {
		return Member{}, ErrExpired
	}
	return m, nil
}
