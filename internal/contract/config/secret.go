package config

import (
	"fmt"
	"os"
	"strings"
)

// MinSecretBytes is the shortest symmetric secret graymesh accepts, for
// HMAC token keys and the mesh lane key alike: 256 bits, the output size
// of SHA-256, which RFC 7518 (section 3.2) requires of an HS256 key.
const MinSecretBytes = 32

// ReadSecret reads a secret file, without the line ending an editor or
// `echo` leaves at its end, and checks its length; what names the field
// in the error.
func ReadSecret(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	secret := []byte(strings.TrimRight(string(b), "\r\n"))
	if err := CheckSecret(secret, what); err != nil {
		return nil, err
	}
	return secret, nil
}

// CheckSecret refuses a secret shorter than MinSecretBytes.
func CheckSecret(secret []byte, what string) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("%s: %d bytes; a secret needs at least %d", what, len(secret), MinSecretBytes)
	}
	return nil
}
