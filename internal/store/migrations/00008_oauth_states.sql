-- +goose Up
-- OAuth state values handed out by every /connect/<platform> link (Twitch,
-- Discord, Slack): each is good once, for as long as the callback allows
-- (checked when it deletes the row). In PostgreSQL rather than memory
-- because the callback may reach another replica. kind is what the link
-- connects, when a platform has several (Twitch: broadcaster or bot).
CREATE TABLE oauth_states (
    state      text        PRIMARY KEY,
    platform   text        NOT NULL,
    kind       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_created ON oauth_states (created_at);

-- The per-platform tables this one replaces. A state in flight is lost,
-- which costs its user one more click on the connect link.
DROP TABLE twitch_oauth_states;
DROP TABLE discord_oauth_states;
DROP TABLE slack_oauth_states;

-- +goose Down
-- The old tables come back empty, so the earlier migrations' Down still
-- finds what it drops.
CREATE TABLE slack_oauth_states (
    state      text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_oauth_states_created ON slack_oauth_states (created_at);
CREATE TABLE discord_oauth_states (
    state      text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX discord_oauth_states_created ON discord_oauth_states (created_at);
CREATE TABLE twitch_oauth_states (
    state      text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('broadcaster', 'bot')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twitch_oauth_states_created ON twitch_oauth_states (created_at);
DROP TABLE oauth_states;
