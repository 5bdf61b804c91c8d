-- +goose Up
-- Portal users: people who sign in to the web portal. A user is created on
-- first sign-in, or earlier when an owner adds them to a community by
-- platform account (they then sign in to the membership waiting for them).
CREATE TABLE portal_users (
    id           uuid PRIMARY KEY,
    display_name text        NOT NULL DEFAULT '',
    super_admin  boolean     NOT NULL DEFAULT false,
    disabled     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The platform accounts a user signs in with; one platform account is one
-- user, so signing in twice with it lands on the same user.
CREATE TABLE portal_identities (
    platform         text        NOT NULL,
    platform_user_id text        NOT NULL,
    login            text        NOT NULL DEFAULT '',
    user_id          uuid        NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, platform_user_id)
);
CREATE INDEX portal_identities_user ON portal_identities (user_id);

-- Server-side sessions. Only a SHA-256 of the cookie's token is kept, so a
-- copy of this table signs nobody in. A session ends when idle past the
-- portal's idle limit (last_seen) or at expires_at (the absolute limit),
-- whichever comes first.
CREATE TABLE portal_sessions (
    token_hash bytea       PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    csrf_token text        NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ip         text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT ''
);
CREATE INDEX portal_sessions_user ON portal_sessions (user_id);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

CREATE TABLE community_members (
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL REFERENCES portal_users (id) ON DELETE CASCADE,
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'moderator')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, user_id)
);
CREATE INDEX community_members_user ON community_members (user_id);

-- +goose Down
DROP TABLE community_members;
DROP TABLE portal_sessions;
DROP TABLE portal_identities;
DROP TABLE portal_users;
