-- +goose Up
-- Tokens the AI module spent, one row per answered invocation, so a
-- redelivered invocation counts once (the key) and a community's daily
-- budget is a sum over an index. Rows older than a week are pruned by the
-- module as it writes.
CREATE TABLE ai_usage (
    invocation_id uuid PRIMARY KEY,
    community_id uuid NOT NULL,
    day date NOT NULL,
    tokens integer NOT NULL CHECK (tokens >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_community_day ON ai_usage (community_id, day);
CREATE INDEX ai_usage_day ON ai_usage (day);

-- +goose Down
DROP TABLE ai_usage;
