-- +goose Up
-- Song requests: one queue per community, whatever chat platform a request
-- came from. Every queue change first locks the community's music_state row,
-- so two requests at once cannot both slip under a per-user limit and the
-- queue never has two entries playing.
CREATE TABLE music_state (
    community_id uuid        PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    paused       boolean     NOT NULL DEFAULT false,
    -- watching: a scheduled job follows the streamer's Spotify player, so
    -- the now-playing card changes when a song ends there (one job at most).
    watching     boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- An entry is queued, then playing, then done (played, skipped or removed).
-- Done entries stay a while as history and are pruned by housekeeping.
CREATE TABLE music_queue (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id   uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    provider       text        NOT NULL CHECK (provider IN ('youtube', 'spotify')),
    track_id       text        NOT NULL CHECK (char_length(track_id) BETWEEN 1 AND 100),
    uri            text        NOT NULL DEFAULT '',
    title          text        NOT NULL,
    artist         text        NOT NULL DEFAULT '',
    duration_ms    bigint      NOT NULL DEFAULT 0,
    requester      text        NOT NULL, -- platform:user id, or person:<id>
    requester_name text        NOT NULL DEFAULT '',
    state          text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'playing', 'played', 'skipped', 'removed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    ended_at       timestamptz
);
CREATE INDEX music_queue_open ON music_queue (community_id, id) WHERE state IN ('queued', 'playing');
CREATE UNIQUE INDEX music_queue_one_playing ON music_queue (community_id) WHERE state = 'playing';
CREATE INDEX music_queue_done ON music_queue (ended_at) WHERE ended_at IS NOT NULL;

-- +goose Down
DROP TABLE music_queue;
DROP TABLE music_state;
