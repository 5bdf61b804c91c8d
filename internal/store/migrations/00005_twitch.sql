-- +goose Up
-- Twitch users who connected through OAuth: broadcasters (channels the bot
-- serves) and the bot's own account. Their tokens are not here: they live
-- encrypted in secrets (owner 'twitch', name 'token.<user id>').
CREATE TABLE twitch_accounts (
    user_id          text        PRIMARY KEY,
    login            text        NOT NULL,
    display_name     text        NOT NULL DEFAULT '',
    kind             text        NOT NULL CHECK (kind IN ('broadcaster', 'bot')),
    scopes           text[]      NOT NULL DEFAULT '{}',
    status           text        NOT NULL CHECK (status IN ('connected', 'disconnected')),
    -- The bot moderates this broadcaster's channel, so it may send faster.
    bot_is_moderator boolean     NOT NULL DEFAULT false,
    -- Why the account was disconnected (refresh refused, grant revoked).
    error            text        NOT NULL DEFAULT '',
    token_expires_at timestamptz,
    connected_at     timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twitch_accounts_connected ON twitch_accounts (kind) WHERE status = 'connected';
-- The bot chats as one account: connecting another one replaces it.
CREATE UNIQUE INDEX twitch_accounts_one_bot ON twitch_accounts (kind) WHERE kind = 'bot' AND status = 'connected';

-- OAuth state values handed out by /connect/twitch: each is good once, for
-- 10 minutes (checked when the callback deletes it).
CREATE TABLE twitch_oauth_states (
    state      text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('broadcaster', 'bot')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twitch_oauth_states_created ON twitch_oauth_states (created_at);

-- +goose Down
DROP TABLE twitch_oauth_states;
DROP TABLE twitch_accounts;
