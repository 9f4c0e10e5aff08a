package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The duplicate-claim check: a small scanner over the token payload that
// finds a top-level member named twice, which encoding/json would silently
// resolve to the last one.

// uniqueClaims refuses a payload that names a top-level claim twice. The
// JSON decoder keeps the last of repeated names and other parsers keep the
// first, so {"sub":"bob","sub":"alice"} would be a different caller to
// different readers. It runs after the signature verified, on the uncached
// path only, and scans the payload once more without decoding it.
func (v *Verifier) uniqueClaims(token string) error {
	_, rest, _ := strings.Cut(token, ".")
	segment, _, _ := strings.Cut(rest, ".")
	payload, err := v.parser.DecodeSegment(segment)
	if err != nil {
		return errPayload
	}
	name, repeated, err := repeatedName(payload)
	if err != nil {
		return err
	}
	if repeated {
		return fmt.Errorf("%w: %q", errDuplicateClaim, name)
	}
	return nil
}

// repeatedName returns the first member name that the JSON object b names
// twice at its top level. Names compare as encoding/json decodes them
// (escapes resolved, invalid UTF-8 replaced). b has already been decoded
// once, so it is valid JSON; anything else is reported as malformed.
func repeatedName(b []byte) (string, bool, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false, errPayload
	}
	var small [32][]byte // names so far; a map takes over past 32
	names := small[:0]
	var many map[string]struct{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", false, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return "", false, errPayload
		}
		end, escaped := stringEnd(b, i)
		if end < 0 {
			return "", false, errPayload
		}
		name := b[i+1 : end-1]
		if escaped || !utf8.Valid(name) {
			var s string
			if json.Unmarshal(b[i:end], &s) != nil {
				return "", false, errPayload
			}
			name = []byte(s)
		}
		if many != nil {
			if _, dup := many[string(name)]; dup {
				return string(name), true, nil
			}
			many[string(name)] = struct{}{}
		} else {
			for _, n := range names {
				if bytes.Equal(n, name) {
					return string(name), true, nil
				}
			}
			if len(names) < len(small) {
				names = append(names, name)
			} else {
				many = make(map[string]struct{}, 2*len(small))
				for _, n := range names {
					many[string(n)] = struct{}{}
				}
				many[string(name)] = struct{}{}
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return "", false, errPayload
		}
		if i = valueEnd(b, i+1); i < 0 {
			return "", false, errPayload
		}
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return "", false, nil
		default:
			return "", false, errPayload
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at
// b[i] == '"' (-1 when it does not end), and whether it has an escape.
func stringEnd(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, false
}

// valueEnd returns the index just past the JSON value that starts at or
// after b[i], or -1.
func valueEnd(b []byte, i int) int {
	i = skipSpace(b, i)
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _ := stringEnd(b, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && skipSpace(b, i) == i {
		i++
	}
	return i
}
