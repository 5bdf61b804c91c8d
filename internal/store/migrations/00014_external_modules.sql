-- +goose Up
-- External modules: how the relay reaches each one. Their manifests live in
-- modules (builtin = false); a webhook's HMAC secret lives encrypted in
-- secrets (owner 'external', name = the module).
CREATE TABLE external_modules (
    name       text        PRIMARY KEY REFERENCES modules (name) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('nats', 'webhook')),
    url        text        NOT NULL DEFAULT '',
    created_by text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'webhook') = (url <> ''))
);

-- Invocations handed to external NATS modules and not answered yet. The
-- relay accepts a result only for a row here of the same module, before it
-- expires, and only once.
CREATE TABLE external_pending (
    invocation_id uuid        PRIMARY KEY,
    module        text        NOT NULL,
    community_id  uuid        NOT NULL,
    invocation    jsonb       NOT NULL,
    expires_at    timestamptz NOT NULL,
    answered_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX external_pending_expires ON external_pending (expires_at);

-- +goose Down
DROP TABLE external_pending;
DROP TABLE external_modules;
