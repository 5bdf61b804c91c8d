package external

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	HeaderSignature = "X-WaddleBot-Signature"
	HeaderTimestamp = "X-WaddleBot-Timestamp"
)

// MaxBody bounds an invocation a module accepts and a result the relay reads.
const MaxBody = 1 << 20

// Sign is the signature header's value for body sent at ts (Unix seconds):
// "sha256=" and the hex HMAC-SHA256, keyed with the module's secret, of
// "<ts>.<body>". The timestamp is signed so a captured request cannot be
// replayed later.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is a webhook request that does not verify.
var ErrBadSignature = errors.New("external: bad webhook signature")

// Verify is for module authors (and the tests' modules): it reads the
// request body and checks its signature and that its timestamp lies within
// skew of now. Only a verified body is returned.
func Verify(r *http.Request, secret []byte, now time.Time, skew time.Duration) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("external: unable to read the request: %w", err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrBadSignature, MaxBody)
	}
	ts := r.Header.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > skew || d < -skew {
		return nil, fmt.Errorf("%w: timestamp %s is outside %s of now", ErrBadSignature, ts, skew)
	}
	got := r.Header.Get(HeaderSignature)
	if !strings.HasPrefix(got, "sha256=") || !hmac.Equal([]byte(got), []byte(Sign(secret, ts, body))) {
		return nil, ErrBadSignature
	}
	return body, nil
}
