-- +goose Up
-- Communities group channels across platforms. A channel nobody has claimed
-- gets a provisional community of its own, so it answers at once without
-- sharing data with strangers.
CREATE TABLE communities (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    -- 1 to 3 punctuation characters; '#' is reserved for external modules.
    prefix      text        NOT NULL DEFAULT '!' CHECK (length(prefix) BETWEEN 1 AND 3 AND prefix !~ '[[:alnum:][:space:]#]'),
    time_zone   text        NOT NULL DEFAULT 'UTC',
    locale      text        NOT NULL DEFAULT 'en',
    provisional boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channels (
    platform     text        NOT NULL,
    channel_id   text        NOT NULL,
    server_id    text        NOT NULL DEFAULT '',
    name         text        NOT NULL DEFAULT '',
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, channel_id)
);
CREATE INDEX channels_community ON channels (community_id);

-- The module catalogue: one manifest per module, newest version wins.
CREATE TABLE modules (
    name       text PRIMARY KEY,
    version    text        NOT NULL,
    manifest   jsonb       NOT NULL,
    builtin    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-community choices: a module without a row takes its manifest's default.
CREATE TABLE community_modules (
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    module       text        NOT NULL,
    enabled      boolean     NOT NULL,
    settings     jsonb       NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, module)
);

-- Per-community command overrides; NULL keeps the manifest's value.
CREATE TABLE command_overrides (
    community_id       uuid    NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    command            text    NOT NULL,
    enabled            boolean,
    permission         text,
    global_cooldown_ms bigint CHECK (global_cooldown_ms >= 0),
    user_cooldown_ms   bigint CHECK (user_cooldown_ms >= 0),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, command)
);

-- The outbox: an invocation's result commits here with its writes; the
-- runtime publishes it and marks it sent. A redelivered invocation finds its
-- row and republishes the stored messages instead of running again.
CREATE TABLE processed_invocations (
    invocation_id uuid PRIMARY KEY,
    module        text        NOT NULL,
    community_id  uuid,
    messages      json,
    committed_at  timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX processed_invocations_unsent ON processed_invocations (module, committed_at) WHERE sent_at IS NULL;
CREATE INDEX processed_invocations_sent ON processed_invocations (module, committed_at) WHERE sent_at IS NOT NULL;

-- Secrets (OAuth tokens, webhook secrets), AES-256-GCM encrypted.
CREATE TABLE secrets (
    owner      text        NOT NULL, -- a community id, or 'global'
    name       text        NOT NULL,
    key_id     text        NOT NULL,
    nonce      bytea       NOT NULL,
    ciphertext bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);

-- Who changed which command, module or setting.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    community_id uuid,
    actor        text        NOT NULL,
    action       text        NOT NULL,
    target       text        NOT NULL DEFAULT '',
    details      jsonb       NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_community ON audit_log (community_id, at DESC);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE secrets;
DROP TABLE processed_invocations;
DROP TABLE command_overrides;
DROP TABLE community_modules;
DROP TABLE modules;
DROP TABLE channels;
DROP TABLE communities;
