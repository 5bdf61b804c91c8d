package schemas

import (
	"errors"
	"fmt"
	"strings"
)

// tokenEscape starts an escaped byte in an encoded token. '=' is legal both in
// NATS subject tokens and in KV keys, so one encoding serves subjects, KV keys
// and durable names alike.
const tokenEscape = '='

// emptyToken stands for the empty string: a subject token may not be empty,
// and a lone escape character can never come out of encoding anything else.
const emptyToken = "="

// ErrBadToken is returned when a string is not a token EncodeToken produced.
var ErrBadToken = errors.New("schemas: malformed subject token")

// EncodeToken turns any string (a channel id, a channel name, a community id)
// into one subject token: ASCII letters, digits, '_' and '-' stay as they
// are, every other byte becomes "=XX" with upper-case hex. The result never
// holds '.', '*', '>' or white space, and DecodeToken reverses it exactly.
func EncodeToken(s string) string {
	if s == "" {
		return emptyToken
	}
	if isPlainToken(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainTokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(tokenEscape)
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken. It rejects anything EncodeToken could not
// have produced, so every string has exactly one token.
func DecodeToken(tok string) (string, error) {
	if tok == emptyToken {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty", ErrBadToken)
	}
	if isPlainToken(tok) {
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plainTokenByte(c) {
			out = append(out, c)
			continue
		}
		if c != tokenEscape || i+2 >= len(tok) {
			return "", fmt.Errorf("%w: %q at %d", ErrBadToken, c, i)
		}
		hi, okHi := unhex(tok[i+1])
		lo, okLo := unhex(tok[i+2])
		if !okHi || !okLo {
			return "", fmt.Errorf("%w: bad escape at %d", ErrBadToken, i)
		}
		v := hi<<4 | lo
		if plainTokenByte(v) {
			// A plain byte escaped would give a second spelling of one string.
			return "", fmt.Errorf("%w: needless escape at %d", ErrBadToken, i)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

// ValidToken reports whether tok can stand as one subject token as written.
func ValidToken(tok string) bool {
	_, err := DecodeToken(tok)
	return err == nil
}

func isPlainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func plainTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
