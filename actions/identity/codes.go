package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"strings"
	"unicode"
)

// codeAlphabet leaves out characters read alike (0/O, 1/I/L), since a code
// is read in one app and typed in another.
const codeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// newCode draws a code from crypto/rand.
func newCode() (string, error) {
	var b strings.Builder
	limit := big.NewInt(int64(len(codeAlphabet)))
	for range CodeLength {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return "", err
		}
		b.WriteByte(codeAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// normalizeCode reads a code as typed: any case, spaces and dashes ignored.
// ok is false when what is left cannot be a code at all.
func normalizeCode(s string) (code string, ok bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r < unicode.MaxASCII && strings.ContainsRune(codeAlphabet, unicode.ToUpper(r)):
			b.WriteRune(unicode.ToUpper(r))
		default:
			return "", false
		}
		if b.Len() > CodeLength {
			return "", false
		}
	}
	return b.String(), b.Len() == CodeLength
}

// codeHash is what is stored of a code: bound to the account that asked, so
// a row copied to another requester is worth nothing.
func codeHash(platform, userID, code string) []byte {
	h := sha256.Sum256([]byte(platform + "\x00" + userID + "\x00" + code))
	return h[:]
}
