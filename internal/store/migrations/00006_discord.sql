-- +goose Up
-- Guilds the bot was installed in through /connect/discord, and the
-- provisional community each got (until an owner attaches the guild to
-- theirs).
CREATE TABLE discord_guilds (
    guild_id     text        PRIMARY KEY,
    name         text        NOT NULL DEFAULT '',
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    permissions  bigint      NOT NULL DEFAULT 0,
    installed_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- OAuth state values handed out by /connect/discord: each is good once, for
-- 10 minutes (checked when the callback deletes it). In PostgreSQL rather
-- than memory because the callback may reach another replica.
CREATE TABLE discord_oauth_states (
    state      text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX discord_oauth_states_created ON discord_oauth_states (created_at);

-- +goose Down
DROP TABLE discord_oauth_states;
DROP TABLE discord_guilds;
