-- Outbound webhooks: the customer's endpoints, and every event's delivery to each of them.
CREATE TABLE webhook_profiles (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    name text NOT NULL,
    url text NOT NULL,
    -- Empty: every event type.
    event_types text[] NOT NULL DEFAULT '{}',
    event_version text NOT NULL,
    status text NOT NULL,
    disabled_reason text,
    -- The signing secret, sealed like credentials (the profile id is the associated data).
    secret bytea NOT NULL,
    -- The secret before the last rotation, and until when it still signs.
    previous_secret bytea,
    previous_secret_until timestamptz,
    -- The log position at creation: the profile receives the events after it.
    start_transaction bigint NOT NULL,
    start_sequence bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_profiles_account ON webhook_profiles (account_id, created_at, id);

-- How far the dispatcher has turned events into deliveries: one row, locked by the replica
-- that dispatches.
CREATE TABLE outbound_dispatch (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    transaction_id bigint NOT NULL,
    sequence bigint NOT NULL
);
INSERT INTO outbound_dispatch (transaction_id, sequence)
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1, 9223372036854775807;

CREATE TABLE outbound_deliveries (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    profile_id uuid NOT NULL REFERENCES webhook_profiles (id) ON DELETE CASCADE,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    -- Only for a test webhook, which has no event in the log: the body it sends.
    body json,
    status text NOT NULL,
    -- Every attempt: attemptedAt, responseStatus, durationMs, error.
    attempts jsonb NOT NULL DEFAULT '[]',
    next_attempt_at timestamptz,
    -- The current round (a redelivery starts a new one): when its first attempt was (give-up
    -- counts from it), how many attempts it has had, and the last one's error.
    first_attempted_at timestamptz,
    round_attempts integer NOT NULL DEFAULT 0,
    last_error text,
    locked_by text,
    locked_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (profile_id, event_id)
);
-- A profile's due deliveries, oldest first; and the few held by a sender right now.
CREATE INDEX outbound_deliveries_due ON outbound_deliveries (profile_id, next_attempt_at)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX outbound_deliveries_held ON outbound_deliveries (profile_id)
    WHERE locked_until IS NOT NULL;
CREATE INDEX outbound_deliveries_profile ON outbound_deliveries (profile_id, created_at DESC, id DESC);
