package external

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"

	"github.com/waddlebot/waddlebot/schemas"
)

// MaxManifestBytes bounds an external module's manifest; real ones are a
// few KiB.
const MaxManifestBytes = 256 << 10

// ParseManifest reads an external module's manifest as an operator gives it
// (the portal's form, the REST API): strictly (unknown fields and anything
// after the object are refused), marked external, not named like a
// built-in module, valid, and off until a community enables it. Its errors
// are for the operator to read.
func ParseManifest(doc []byte, builtin []string) (schemas.Manifest, error) {
	var m schemas.Manifest
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return m, errors.New("give the module's manifest (a JSON object)")
	}
	if len(doc) > MaxManifestBytes {
		return m, fmt.Errorf("the manifest is over %d KiB", MaxManifestBytes>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("the manifest is not valid JSON for a manifest: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return m, errors.New("the manifest has something after its closing brace")
	}
	// Registering is what makes a module external; the store refuses one
	// that is on by default.
	m.External = true
	if slices.Contains(builtin, m.Name) {
		return m, fmt.Errorf("%q is the name of a built-in module; choose another name", m.Name)
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	if m.DefaultEnabled {
		return m, errors.New(`external modules are off until a community enables them: remove "default_enabled"`)
	}
	return m, nil
}

// CheckWebhookURL accepts https, and plain http only to this machine when
// loopbackHTTP is set (waddlebot dev, where nothing leaves the host).
func CheckWebhookURL(raw string, loopbackHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("the webhook URL must be an absolute https:// URL without credentials or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if loopbackHTTP && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
			return nil
		}
		return errors.New("the webhook URL must use https (plain http is allowed only to localhost in waddlebot dev)")
	}
	return errors.New("the webhook URL must use https")
}
