-- +goose Up
-- API keys for /api/v1. A key belongs to the portal user who made it and
-- either to one community (community_id) or, for a super-admin's key, to
-- the whole site (community_id NULL). Only a SHA-256 of the secret is kept:
-- the secret is 32 random bytes, so a plain hash cannot be reversed and a
-- copy of this table authenticates nobody.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL DEFAULT '',
    secret_hash  bytea       NOT NULL UNIQUE,
    hint         text        NOT NULL DEFAULT '',
    user_id      uuid        NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    community_id uuid        REFERENCES communities (id) ON DELETE CASCADE,
    scopes       text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_community ON api_keys (community_id);

-- +goose Down
DROP TABLE api_keys;
