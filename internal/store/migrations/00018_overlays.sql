-- +goose Up
-- Browser sources (OBS overlays): one secret URL per community and source.
-- Only a SHA-256 of each token is kept, so a copy of this table opens no
-- overlay. Rotation keeps the previous token until old_valid_until, so a
-- streamer has a few minutes to paste the new URL into OBS.
CREATE TABLE overlay_sources (
    community_id    uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    source          text        NOT NULL CHECK (source IN ('alerts', 'ticker', 'nowplaying', 'general')),
    token_hash      bytea       UNIQUE,
    old_token_hash  bytea       UNIQUE,
    old_valid_until timestamptz,
    theme           text        NOT NULL DEFAULT 'transparent' CHECK (theme IN ('light', 'dark', 'transparent')),
    font_size       integer     NOT NULL DEFAULT 32 CHECK (font_size BETWEEN 8 AND 200),
    width           integer     NOT NULL DEFAULT 800 CHECK (width BETWEEN 100 AND 3840),
    height          integer     NOT NULL DEFAULT 200 CHECK (height BETWEEN 50 AND 2160),
    rotated_at      timestamptz,
    PRIMARY KEY (community_id, source)
);

-- +goose Down
DROP TABLE overlay_sources;
