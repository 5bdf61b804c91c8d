-- +goose Up
-- Slack workspaces (teams) the app was installed in through /connect/slack.
-- Their bot tokens are not here: they live encrypted in secrets (owner
-- 'slack', name 'bot.<team id>'), and are deleted when the workspace is
-- uninstalled or its tokens revoked.
CREATE TABLE slack_workspaces (
    team_id      text        PRIMARY KEY,
    team_name    text        NOT NULL DEFAULT '',
    -- The bot's own user id in the team: its messages are dropped at intake
    -- and mentions of it recognised.
    bot_user_id  text        NOT NULL DEFAULT '',
    status       text        NOT NULL CHECK (status IN ('installed', 'uninstalled')),
    -- Why the workspace was uninstalled (app_uninstalled, tokens_revoked,
    -- token_revoked on a send, ...).
    reason       text        NOT NULL DEFAULT '',
    installed_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- OAuth state values handed out by /connect/slack: each is good once, for
-- 10 minutes (checked when the callback deletes it).
CREATE TABLE slack_oauth_states (
    state      text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_oauth_states_created ON slack_oauth_states (created_at);

-- +goose Down
DROP TABLE slack_oauth_states;
DROP TABLE slack_workspaces;
