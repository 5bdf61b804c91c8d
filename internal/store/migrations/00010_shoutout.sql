-- +goose Up
-- When each channel last shouted each target out, for the shoutout module.
-- last_at holds auto-shoutouts on raid back for the community's cooldown;
-- native_at keeps the module from asking for a native Twitch shoutout that
-- Twitch would refuse (one per target per 60 minutes, and one per channel
-- every 2 minutes: the row whose target is '' is the channel's own).
-- Rows are written in the outbox transaction, so a shoutout and its record
-- commit together, and the row lock decides between concurrent raids.
CREATE TABLE shoutout_targets (
    community_id  uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    channel       text        NOT NULL, -- <platform>:<channel id>
    target        text        NOT NULL, -- the target's platform user id (else login, lower case); '' for the channel
    last_at       timestamptz,
    native_at     timestamptz,
    invocation_id uuid,
    PRIMARY KEY (community_id, channel, target)
);

-- +goose Down
DROP TABLE shoutout_targets;
