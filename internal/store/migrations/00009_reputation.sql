-- +goose Up
-- Reputation: a score from 300 to 850 per community and person, moved by
-- weighted activity. Amounts are in hundredths of a point (chat earns 0.01).
--
-- A subject is whom a score belongs to: "person:<id>" once the identity
-- module links accounts, "<platform>:<user id>" until then.

-- The ledger is append-only: the score is 600 plus the sum of its deltas.
-- delta is what the entry actually moved the score (clamped to 300..850 when
-- written), requested what the weights asked for. source is the event, the
-- invocation or the chat batch the entry comes from: unique per subject, so a
-- redelivered event moves the score once.
CREATE TABLE reputation_ledger (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    subject      text        NOT NULL CHECK (char_length(subject) BETWEEN 3 AND 200),
    delta        bigint      NOT NULL,
    requested    bigint      NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('chat', 'follow', 'subscription', 'gift', 'cheer', 'raid',
                                                        'timeout', 'ban', 'adjust')),
    note         text        NOT NULL DEFAULT '',
    source       uuid        NOT NULL,
    actor        text        NOT NULL DEFAULT '', -- who adjusted; empty for activity
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, subject, source)
);
CREATE INDEX reputation_ledger_subject ON reputation_ledger (community_id, subject, id);

-- Entries are never changed or removed, except with their community (a
-- foreign key cascade runs inside a trigger, so its depth is above 1).
-- +goose StatementBegin
CREATE FUNCTION reputation_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'reputation_ledger is append-only';
    END IF;
    RETURN OLD;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER reputation_ledger_append_only BEFORE UPDATE OR DELETE ON reputation_ledger
    FOR EACH ROW EXECUTE FUNCTION reputation_ledger_append_only();

-- The running total of each subject's ledger, updated in the same
-- transaction as every entry, so !rep and !top read one row per person
-- instead of summing the ledger. Chat credit collects in pending (one update
-- per throttled chat, in the transaction that records the invocation) and is
-- folded into one ledger entry every so many credits or minutes.
CREATE TABLE reputation_scores (
    community_id  uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    subject       text        NOT NULL,
    total         bigint      NOT NULL DEFAULT 0 CHECK (total BETWEEN -30000 AND 25000),
    pending       bigint      NOT NULL DEFAULT 0,
    pending_count integer     NOT NULL DEFAULT 0 CHECK (pending_count >= 0),
    pending_since timestamptz,
    display_name  text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, subject)
);
CREATE INDEX reputation_scores_rank ON reputation_scores (community_id, (total + pending) DESC);
CREATE INDEX reputation_scores_pending ON reputation_scores (pending_since) WHERE pending_count > 0;

-- The platform accounts seen for each subject, so `!rep @bob` finds bob's
-- score whichever key it is under.
CREATE TABLE reputation_accounts (
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    platform     text        NOT NULL,
    user_id      text        NOT NULL,
    login        text        NOT NULL,
    subject      text        NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, platform, user_id)
);
CREATE INDEX reputation_accounts_login ON reputation_accounts (community_id, lower(login));

-- +goose Down
DROP TABLE reputation_accounts;
DROP TABLE reputation_scores;
DROP TABLE reputation_ledger;
DROP FUNCTION reputation_ledger_append_only();
