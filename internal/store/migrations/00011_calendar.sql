-- +goose Up
-- The calendar module: a community's events. Their reminders, and the job
-- that rolls a recurring event on to its next occurrence, are
-- scheduled_jobs rows (module 'calendar').

-- Event numbers (!event 3) count per community and are never reused: the
-- row is bumped inside the transaction that adds the event.
CREATE TABLE calendar_counters (
    community_id uuid   PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    last         bigint NOT NULL CHECK (last > 0)
);

CREATE TABLE calendar_events (
    community_id    uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    number          bigint      NOT NULL CHECK (number > 0),
    title           text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description     text        NOT NULL DEFAULT '' CHECK (char_length(description) <= 500),
    -- starts_at is the next (or only) occurrence; a recurring event's
    -- occurrences are counted from anchor_at, so a monthly event on the
    -- 31st keeps to month ends instead of drifting.
    starts_at       timestamptz NOT NULL,
    anchor_at       timestamptz NOT NULL,
    occurrence      int         NOT NULL DEFAULT 0 CHECK (occurrence >= 0),
    recurrence      text        NOT NULL DEFAULT '' CHECK (recurrence IN ('', 'daily', 'weekly', 'monthly')),
    time_zone       text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
    -- Where reminders are posted: the channel the event was added in.
    target          jsonb       NOT NULL,
    created_by      text        NOT NULL, -- <platform>:<user id>
    created_by_name text        NOT NULL,
    created_at      timestamptz NOT NULL,
    decided_by      text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    PRIMARY KEY (community_id, number)
);
CREATE INDEX calendar_events_upcoming ON calendar_events (community_id, starts_at) WHERE state IN ('pending', 'approved');

CREATE TABLE calendar_attendees (
    community_id uuid        NOT NULL,
    number       bigint      NOT NULL,
    user_key     text        NOT NULL,
    user_name    text        NOT NULL,
    joined_at    timestamptz NOT NULL,
    PRIMARY KEY (community_id, number, user_key),
    FOREIGN KEY (community_id, number) REFERENCES calendar_events (community_id, number) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE calendar_attendees;
DROP TABLE calendar_events;
DROP TABLE calendar_counters;
