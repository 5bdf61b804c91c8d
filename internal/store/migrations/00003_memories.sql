-- +goose Up
-- The memories module: a community's quotes and bookmarks. Its reminders
-- are scheduled_jobs rows (module 'memories', kind 'reminder').

-- Numbers users see (quote #42, reminder #7) count per community and are
-- never reused: the row is bumped inside the transaction that uses the
-- number, so concurrent adds queue on it and a removed quote's number stays
-- retired.
CREATE TABLE memories_counters (
    community_id uuid   NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    kind         text   NOT NULL CHECK (kind IN ('quote', 'reminder')),
    last         bigint NOT NULL CHECK (last > 0),
    PRIMARY KEY (community_id, kind)
);

CREATE TABLE memories_quotes (
    community_id  uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    number        bigint      NOT NULL CHECK (number > 0),
    text          text        NOT NULL CHECK (char_length(text) BETWEEN 1 AND 500),
    author        text        NOT NULL DEFAULT '' CHECK (char_length(author) <= 100),
    added_by      text        NOT NULL, -- <platform>:<user id>
    added_by_name text        NOT NULL,
    added_at      timestamptz NOT NULL,
    -- 'simple' does no stemming and knows no stop words, so quotes in any
    -- language are found by their words as typed.
    search        tsvector    GENERATED ALWAYS AS (to_tsvector('simple', text || ' ' || author)) STORED,
    PRIMARY KEY (community_id, number)
);
CREATE INDEX memories_quotes_search ON memories_quotes USING gin (search);

CREATE TABLE memories_bookmarks (
    community_id  uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (name ~ '^[a-z0-9_-]{1,32}$'),
    url           text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2000),
    added_by      text        NOT NULL,
    added_by_name text        NOT NULL,
    added_at      timestamptz NOT NULL,
    PRIMARY KEY (community_id, name)
);

-- +goose Down
DROP TABLE memories_bookmarks;
DROP TABLE memories_quotes;
DROP TABLE memories_counters;
