-- +goose Up
-- A community's own commands: an alias expands, in the router, to a command
-- line of an existing command.
CREATE TABLE aliases (
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (name ~ '^[a-z0-9_-]{1,32}$'),
    target       text        NOT NULL CHECK (length(target) BETWEEN 1 AND 500),
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    runs         bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (community_id, name)
);

-- One row per invocation an alias expanded into, so {count} counts a
-- redelivered event once.
CREATE TABLE alias_runs (
    invocation_id uuid PRIMARY KEY,
    community_id  uuid        NOT NULL,
    name          text        NOT NULL,
    count         bigint      NOT NULL, -- the alias's run count this run got
    at            timestamptz NOT NULL DEFAULT now()
);

-- Labels on chat users, per community. A user is named by platform and
-- login (lower case), as chat mentions name them.
CREATE TABLE labels (
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    platform     text        NOT NULL,
    user_login   text        NOT NULL,
    label        text        NOT NULL CHECK (label ~ '^[a-z0-9_-]{1,32}$'),
    added_by     text        NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, platform, user_login, label)
);

-- Work a module does later (reminders, calendar reminders): claimed with row
-- locks, so it fires once with any number of replicas, and fired after a
-- restart for what came due meanwhile.
CREATE TABLE scheduled_jobs (
    id           uuid PRIMARY KEY,
    module       text        NOT NULL,
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    kind         text        NOT NULL,
    due_at       timestamptz NOT NULL,
    target       jsonb       NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}',
    created_by   text        NOT NULL DEFAULT '',
    state        text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled', 'failed')),
    fired_at     timestamptz,
    late         boolean     NOT NULL DEFAULT false,
    -- Failed firings: retried from not_before, given up after a limit.
    attempts     int         NOT NULL DEFAULT 0,
    not_before   timestamptz,
    last_error   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (module, due_at) WHERE state = 'pending';
CREATE INDEX scheduled_jobs_community ON scheduled_jobs (community_id, module, state);

-- +goose Down
DROP TABLE scheduled_jobs;
DROP TABLE labels;
DROP TABLE alias_runs;
DROP TABLE aliases;
