-- +goose Up
-- Cross-platform identity: a person is one human behind several platform
-- accounts. Persons are global, not per community: the same human is the
-- same person in every community, and each community keeps its own
-- reputation and labels for them.
CREATE TABLE persons (
    id         uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A platform account belongs to at most one person (the primary key), and a
-- person has at most one account per platform (so `!unlink <platform>` names
-- one account).
CREATE TABLE person_accounts (
    platform     text        NOT NULL,
    user_id      text        NOT NULL,
    person_id    uuid        NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    login        text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    linked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, user_id),
    UNIQUE (person_id, platform)
);

-- A link code in flight: one per requesting account (a new !link replaces
-- it, no sooner than the resend interval). Only a hash of the code is kept.
CREATE TABLE identity_link_codes (
    requester_platform text        NOT NULL,
    requester_user_id  text        NOT NULL,
    requester_login    text        NOT NULL,
    requester_display  text        NOT NULL DEFAULT '',
    target_platform    text        NOT NULL,
    target_user_id     text        NOT NULL,
    target_login       text        NOT NULL,
    target_display     text        NOT NULL DEFAULT '',
    code_hash          bytea       NOT NULL,
    attempts           int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sent_at            timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    PRIMARY KEY (requester_platform, requester_user_id)
);
CREATE INDEX identity_link_codes_expires ON identity_link_codes (expires_at);

-- Reputation: when accounts become one person, each community's scores of
-- those accounts move to the person's through a pair of 'merge' entries, so
-- the ledger stays append-only and still sums to every total.
ALTER TABLE reputation_ledger DROP CONSTRAINT reputation_ledger_reason_check;
ALTER TABLE reputation_ledger ADD CONSTRAINT reputation_ledger_reason_check
    CHECK (reason IN ('chat', 'follow', 'subscription', 'gift', 'cheer', 'raid', 'timeout', 'ban', 'adjust', 'merge'));

-- +goose Down
ALTER TABLE reputation_ledger DROP CONSTRAINT reputation_ledger_reason_check;
ALTER TABLE reputation_ledger ADD CONSTRAINT reputation_ledger_reason_check
    CHECK (reason IN ('chat', 'follow', 'subscription', 'gift', 'cheer', 'raid', 'timeout', 'ban', 'adjust'));
DROP TABLE identity_link_codes;
DROP TABLE person_accounts;
DROP TABLE persons;
