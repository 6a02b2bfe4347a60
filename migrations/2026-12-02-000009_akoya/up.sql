-- Akoya refresh tokens an import has used (and so killed), by their SHA-256: an import retried
-- after a lost answer finds its connection here instead of failing on a dead token.
CREATE TABLE consumed_refresh_tokens (
    token_sha256 bytea PRIMARY KEY,
    connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    consumed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consumed_refresh_tokens_connection ON consumed_refresh_tokens (connection_id);
