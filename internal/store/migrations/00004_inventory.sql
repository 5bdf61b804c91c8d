-- +goose Up
-- Shared things a community keeps track of (microphones, cables, games).
-- Names are kept as first typed and compared case-insensitively.
CREATE TABLE inventory_items (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    quantity     integer     NOT NULL CHECK (quantity BETWEEN 1 AND 100000),
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inventory_items_name ON inventory_items (community_id, lower(name));

-- At most 5 per item: the module checks that under the item's row lock.
CREATE TABLE inventory_labels (
    community_id uuid   NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    item_id      bigint NOT NULL REFERENCES inventory_items (id) ON DELETE CASCADE,
    label        text   NOT NULL CHECK (label ~ '^[a-z0-9_-]{1,32}$'),
    PRIMARY KEY (item_id, label)
);
CREATE INDEX inventory_labels_community ON inventory_labels (community_id, label);

-- One row per unit out. An item with units out cannot be deleted (the module
-- refuses first; the foreign key is the backstop).
CREATE TABLE inventory_checkouts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id   uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    item_id        bigint      NOT NULL REFERENCES inventory_items (id),
    holder         text        NOT NULL, -- the login, lower case: what check-in matches
    holder_name    text        NOT NULL, -- as typed, for display
    checked_out_by text        NOT NULL,
    checked_out_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_checkouts_item ON inventory_checkouts (item_id, holder, checked_out_at);

-- Who did what to which item, kept after the item is removed.
CREATE TABLE inventory_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id  uuid        NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    item_id       bigint      REFERENCES inventory_items (id) ON DELETE SET NULL,
    item_name     text        NOT NULL,
    action        text        NOT NULL CHECK (action IN ('add', 'remove', 'checkout', 'checkin')),
    quantity      integer     NOT NULL,
    actor         text        NOT NULL,
    holder        text        NOT NULL DEFAULT '',
    invocation_id uuid        NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_history_item ON inventory_history (item_id, id);
CREATE INDEX inventory_history_community ON inventory_history (community_id, at);

-- +goose Down
DROP TABLE inventory_history;
DROP TABLE inventory_checkouts;
DROP TABLE inventory_labels;
DROP TABLE inventory_items;
