package store

import (
	"context"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SecretOwnerGlobal owns secrets that belong to no community (the bot's own
// platform credentials).
const SecretOwnerGlobal = "global"

// ErrNoSecretKey means secrets were used without WADDLEBOT_SECRET_KEY.
var ErrNoSecretKey = errors.New("store: no secret key configured (WADDLEBOT_SECRET_KEY)")

// ErrNotFound means the row asked for does not exist.
var ErrNotFound = errors.New("store: not found")

type cipher struct {
	aead  gocipher.AEAD
	keyID string
}

func newCipher(key []byte) (*cipher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("store: secret key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: unable to make cipher: %w", err)
	}
	aead, err := gocipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: unable to make GCM: %w", err)
	}
	sum := sha256.Sum256(key)
	// The key id lets a later rotation tell which rows still need the old key.
	return &cipher{aead: aead, keyID: hex.EncodeToString(sum[:4])}, nil
}

// seal encrypts a secret for its owner and name.
func (c *cipher) seal(owner, name string, plaintext []byte) (nonce, sealed []byte, err error) {
	nonce = make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("store: unable to make nonce: %w", err)
	}
	return nonce, c.aead.Seal(nil, nonce, plaintext, []byte(owner+"\x00"+name)), nil
}

// ParseSecretKey reads WADDLEBOT_SECRET_KEY: base64 (standard or URL) or hex
// of 32 bytes.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ErrNoSecretKey
	}
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.URLEncoding.DecodeString,
		base64.RawStdEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("store: secret key must be 32 bytes in base64 or hex")
}

// NewSecretKey makes a random key, base64-encoded.
func NewSecretKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// PutSecret encrypts and stores a secret. The owner and name are bound into
// the ciphertext, so a row copied under another name does not decrypt.
func (s *Store) PutSecret(ctx context.Context, q Querier, owner, name string, plaintext []byte) error {
	if s.cipher == nil {
		return ErrNoSecretKey
	}
	nonce, sealed, err := s.cipher.seal(owner, name, plaintext)
	if err != nil {
		return err
	}
	if q == nil {
		q = s.pool
	}
	_, err = q.Exec(ctx, `
		INSERT INTO secrets (owner, name, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner, name) DO UPDATE
		SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext, updated_at = now()`,
		owner, name, s.cipher.keyID, nonce, sealed)
	if err != nil {
		return fmt.Errorf("store: unable to store secret %s/%s: %w", owner, name, err)
	}
	return nil
}

// Secret reads and decrypts a secret.
func (s *Store) Secret(ctx context.Context, owner, name string) ([]byte, error) {
	if s.cipher == nil {
		return nil, ErrNoSecretKey
	}
	var keyID string
	var nonce, sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT key_id, nonce, ciphertext FROM secrets WHERE owner = $1 AND name = $2`,
		owner, name).Scan(&keyID, &nonce, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: secret %s/%s", ErrNotFound, owner, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: unable to read secret %s/%s: %w", owner, name, err)
	}
	return s.open(owner, name, keyID, nonce, sealed)
}

// open decrypts a row with the key that wrote it: the configured one, or
// during a rotation the previous one.
func (s *Store) open(owner, name, keyID string, nonce, sealed []byte) ([]byte, error) {
	c := s.cipher
	if keyID != c.keyID {
		if s.previous == nil || keyID != s.previous.keyID {
			return nil, fmt.Errorf("store: secret %s/%s was encrypted with key %s, configured key is %s (set WADDLEBOT_SECRET_KEY_PREVIOUS while rotating)",
				owner, name, keyID, c.keyID)
		}
		c = s.previous
	}
	plain, err := c.aead.Open(nil, nonce, sealed, []byte(owner+"\x00"+name))
	if err != nil {
		return nil, fmt.Errorf("store: unable to decrypt secret %s/%s: %w", owner, name, err)
	}
	return plain, nil
}

// RotateSecrets re-encrypts with the configured key every secret written
// with the previous one and returns how many it rewrote. Each row is
// rewritten in its own statement, guarded by its old key id, so a secret
// replaced meanwhile by a running part is left as that part wrote it, and
// running it again is harmless.
func (s *Store) RotateSecrets(ctx context.Context) (int, error) {
	if s.cipher == nil {
		return 0, ErrNoSecretKey
	}
	if s.previous == nil {
		return 0, errors.New("store: no previous secret key to rotate from (WADDLEBOT_SECRET_KEY_PREVIOUS)")
	}
	rows, err := s.pool.Query(ctx, `SELECT owner, name, nonce, ciphertext FROM secrets WHERE key_id = $1`, s.previous.keyID)
	if err != nil {
		return 0, fmt.Errorf("store: unable to list secrets to rotate: %w", err)
	}
	type row struct {
		owner, name   string
		nonce, sealed []byte
	}
	old, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.owner, &x.name, &x.nonce, &x.sealed)
	})
	if err != nil {
		return 0, fmt.Errorf("store: unable to list secrets to rotate: %w", err)
	}
	n := 0
	for _, x := range old {
		plain, err := s.open(x.owner, x.name, s.previous.keyID, x.nonce, x.sealed)
		if err != nil {
			return n, err
		}
		nonce, sealed, err := s.cipher.seal(x.owner, x.name, plain)
		if err != nil {
			return n, err
		}
		tag, err := s.pool.Exec(ctx, `UPDATE secrets SET key_id = $3, nonce = $4, ciphertext = $5, updated_at = now()
			WHERE owner = $1 AND name = $2 AND key_id = $6`, x.owner, x.name, s.cipher.keyID, nonce, sealed, s.previous.keyID)
		if err != nil {
			return n, fmt.Errorf("store: unable to rotate secret %s/%s: %w", x.owner, x.name, err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// DeleteSecret removes a secret.
func (s *Store) DeleteSecret(ctx context.Context, owner, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE owner = $1 AND name = $2`, owner, name); err != nil {
		return fmt.Errorf("store: unable to delete secret %s/%s: %w", owner, name, err)
	}
	return nil
}
