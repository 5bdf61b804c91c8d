// Package natsauth sets up NATS decentralized JWT auth for WaddleBot: an
// operator, a system account, the WaddleBot account with a signing key, and
// one user per part allowed only the subjects that part reads or writes
// (design §2 and §4). The account's identity key stays in the key directory;
// users are signed with the account's signing key, so the portal can mint
// users for external modules without ever holding the account key itself.
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Key file names inside <dir>/keys.
const (
	keyOperator = "operator.nk"
	keySystem   = "system-account.nk"
	keyAccount  = "waddlebot-account.nk"
	keySigning  = "waddlebot-signing.nk"
)

// AccountName is the account every WaddleBot part and external module lives in.
const AccountName = "WADDLEBOT"

// ServerConfigFile is the server configuration snippet Init writes.
const ServerConfigFile = "server.conf"

// Setup holds the keys and the JWTs of the operator and its accounts.
type Setup struct {
	Dir         string
	operator    nkeys.KeyPair
	system      nkeys.KeyPair
	account     nkeys.KeyPair
	signing     nkeys.KeyPair
	OperatorJWT string
	SystemJWT   string
	AccountJWT  string
	// SystemPub and AccountPub are the accounts' public keys.
	SystemPub  string
	AccountPub string
}

// Init loads the keys under dir, creating any that are missing, and issues
// the operator and account JWTs. Running it again keeps the keys, so creds
// issued before stay valid.
func Init(dir string) (*Setup, error) {
	return open(dir, true)
}

// Load opens an existing key directory without creating keys: what minting
// a user for an external module needs.
func Load(dir string) (*Setup, error) {
	return open(dir, false)
}

func open(dir string, create bool) (*Setup, error) {
	if dir == "" {
		return nil, errors.New("natsauth: a directory is required")
	}
	keys := filepath.Join(dir, "keys")
	if create {
		if err := os.MkdirAll(keys, 0o700); err != nil {
			return nil, fmt.Errorf("natsauth: unable to create %s: %w", keys, err)
		}
	}
	s := &Setup{Dir: dir}
	var err error
	if s.operator, err = loadKey(filepath.Join(keys, keyOperator), nkeys.CreateOperator, create); err != nil {
		return nil, err
	}
	if s.system, err = loadKey(filepath.Join(keys, keySystem), nkeys.CreateAccount, create); err != nil {
		return nil, err
	}
	if s.account, err = loadKey(filepath.Join(keys, keyAccount), nkeys.CreateAccount, create); err != nil {
		return nil, err
	}
	if s.signing, err = loadKey(filepath.Join(keys, keySigning), nkeys.CreateAccount, create); err != nil {
		return nil, err
	}
	if err := s.issue(); err != nil {
		return nil, err
	}
	return s, nil
}

func loadKey(path string, makeKey func() (nkeys.KeyPair, error), create bool) (nkeys.KeyPair, error) {
	seed, err := os.ReadFile(path)
	switch {
	case err == nil:
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, fmt.Errorf("natsauth: unable to read key %s: %w", path, err)
		}
		return kp, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("natsauth: unable to read key %s: %w", path, err)
	case !create:
		return nil, fmt.Errorf("natsauth: key %s is missing (run `waddlebot nats-config` first): %w", path, err)
	}
	kp, err := makeKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: unable to create key: %w", err)
	}
	seed, err = kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsauth: unable to encode key: %w", err)
	}
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("natsauth: unable to write key %s: %w", path, err)
	}
	return kp, nil
}

func (s *Setup) issue() error {
	opub, err := s.operator.PublicKey()
	if err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	if s.SystemPub, err = s.system.PublicKey(); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	if s.AccountPub, err = s.account.PublicKey(); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	spub, err := s.signing.PublicKey()
	if err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}

	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "waddlebot"
	oc.SystemAccount = s.SystemPub
	if s.OperatorJWT, err = oc.Encode(s.operator); err != nil {
		return fmt.Errorf("natsauth: unable to sign the operator: %w", err)
	}

	sc := jwt.NewAccountClaims(s.SystemPub)
	sc.Name = "SYS"
	if s.SystemJWT, err = sc.Encode(s.operator); err != nil {
		return fmt.Errorf("natsauth: unable to sign the system account: %w", err)
	}

	ac := jwt.NewAccountClaims(s.AccountPub)
	ac.Name = AccountName
	ac.SigningKeys.Add(spub)
	// Unlimited JetStream: the streams' own limits (streams.Config) bound storage.
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1,
		MaxAckPending: -1, MemoryMaxStreamBytes: -1, DiskMaxStreamBytes: -1}
	if s.AccountJWT, err = ac.Encode(s.operator); err != nil {
		return fmt.Errorf("natsauth: unable to sign the account: %w", err)
	}
	return nil
}

// ServerConfig is a nats-server configuration snippet: the operator and the
// accounts preloaded into the memory resolver. Include it from the server's
// configuration (or load it alone, as the tests do).
func (s *Setup) ServerConfig() string {
	var b strings.Builder
	b.WriteString("# Written by `waddlebot nats-config`. Decentralized JWT auth: operator -> accounts -> users.\n")
	fmt.Fprintf(&b, "operator: %q\n", s.OperatorJWT)
	fmt.Fprintf(&b, "system_account: %s\n", s.SystemPub)
	b.WriteString("resolver: MEMORY\n")
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", s.SystemPub, s.SystemJWT)
	fmt.Fprintf(&b, "  %s: %q\n", s.AccountPub, s.AccountJWT)
	b.WriteString("}\n")
	return b.String()
}

// Permissions are the subjects a user may publish to and subscribe to.
type Permissions struct {
	Pub []string
	Sub []string
	// Responses lets the user answer each request it receives once, on the
	// request's own reply subject, without a publish right on _INBOX.> (which
	// would let it write into any part's inbox). Parts that serve wb.api
	// lookups need it.
	Responses bool
}

func (p *Permissions) pub(s ...string) { p.Pub = append(p.Pub, s...) }
func (p *Permissions) sub(s ...string) { p.Sub = append(p.Sub, s...) }

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// MintUser issues credentials (a .creds file's content) for a new user of
// the WaddleBot account, signed with the account's signing key.
func (s *Setup) MintUser(name string, p Permissions) ([]byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("natsauth: unable to create user %s: %w", name, err)
	}
	upub, err := user.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = s.AccountPub
	uc.Pub.Allow = dedupe(p.Pub)
	uc.Sub.Allow = dedupe(p.Sub)
	if len(uc.Pub.Allow) == 0 {
		// An empty allow list means "everything" in NATS: deny instead.
		uc.Pub.Deny.Add(">")
	}
	if len(uc.Sub.Allow) == 0 {
		uc.Sub.Deny.Add(">")
	}
	if p.Responses {
		// One reply per request, within the server's default window.
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	}
	token, err := uc.Encode(s.signing)
	if err != nil {
		return nil, fmt.Errorf("natsauth: unable to sign user %s: %w", name, err)
	}
	seed, err := user.Seed()
	if err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return nil, fmt.Errorf("natsauth: unable to format the credentials of %s: %w", name, err)
	}
	return creds, nil
}

var partName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Parts lists the users `waddlebot nats-config` writes: admin, router,
// relay, portal, collector-<platform> and action-<module> for the given
// built-in modules.
func Parts(platforms, modules []string) (map[string]Permissions, error) {
	out := map[string]Permissions{
		"admin":  AdminPermissions(),
		"router": RouterPermissions(),
		"relay":  RelayPermissions(),
		"portal": PortalPermissions(),
	}
	for _, p := range platforms {
		if !partName.MatchString(p) {
			return nil, fmt.Errorf("natsauth: platform name %q is not a subject token", p)
		}
		out["collector-"+p] = CollectorPermissions(p)
	}
	for _, m := range modules {
		if !partName.MatchString(m) {
			return nil, fmt.Errorf("natsauth: module name %q is not a subject token", m)
		}
		out["action-"+m] = ActionPermissions(m)
	}
	return out, nil
}

// WriteAll writes the server configuration and one creds file per part to
// s.Dir (creds under <dir>/creds/<part>.creds). Users are minted afresh each
// time; the operator and account keys are kept, so older creds stay valid.
func (s *Setup) WriteAll(parts map[string]Permissions) ([]string, error) {
	var written []string
	conf := filepath.Join(s.Dir, ServerConfigFile)
	if err := os.WriteFile(conf, []byte(s.ServerConfig()), 0o600); err != nil {
		return nil, fmt.Errorf("natsauth: unable to write %s: %w", conf, err)
	}
	written = append(written, conf)
	credsDir := filepath.Join(s.Dir, "creds")
	if err := os.MkdirAll(credsDir, 0o700); err != nil {
		return nil, fmt.Errorf("natsauth: unable to create %s: %w", credsDir, err)
	}
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		creds, err := s.MintUser(n, parts[n])
		if err != nil {
			return nil, err
		}
		path := filepath.Join(credsDir, n+".creds")
		if err := os.WriteFile(path, creds, 0o600); err != nil {
			return nil, fmt.Errorf("natsauth: unable to write %s: %w", path, err)
		}
		written = append(written, path)
	}
	return written, nil
}
