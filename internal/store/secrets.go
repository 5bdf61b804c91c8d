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
	nonce := make([]byte, s.cipher.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("store: unable to make nonce: %w", err)
	}
	sealed := s.cipher.aead.Seal(nil, nonce, plaintext, []byte(owner+"\x00"+name))
	if q == nil {
		q = s.pool
	}
	_, err := q.Exec(ctx, `
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
	if keyID != s.cipher.keyID {
		return nil, fmt.Errorf("store: secret %s/%s was encrypted with key %s, configured key is %s", owner, name, keyID, s.cipher.keyID)
	}
	plain, err := s.cipher.aead.Open(nil, nonce, sealed, []byte(owner+"\x00"+name))
	if err != nil {
		return nil, fmt.Errorf("store: unable to decrypt secret %s/%s: %w", owner, name, err)
	}
	return plain, nil
}

// DeleteSecret removes a secret.
func (s *Store) DeleteSecret(ctx context.Context, owner, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE owner = $1 AND name = $2`, owner, name); err != nil {
		return fmt.Errorf("store: unable to delete secret %s/%s: %w", owner, name, err)
	}
	return nil
}
