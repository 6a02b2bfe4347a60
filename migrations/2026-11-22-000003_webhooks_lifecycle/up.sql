-- Provider webhooks, recorded before anything acts on them. A delivery is identified by the
-- SHA-256 of its raw body (Plaid's webhooks carry no id), so a retried delivery is recorded once.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    service_provider text NOT NULL,
    body_sha256 text NOT NULL,
    body bytea NOT NULL,
    -- When the provider signed it (the JWT's iat): orders deliveries that arrive out of order.
    signed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    webhook_type text,
    webhook_code text,
    provider_connection_id text,
    processed_at timestamptz,
    -- What processing did: applied, stale, unknown_connection, ignored.
    outcome text,
    UNIQUE (service_provider, body_sha256)
);
CREATE INDEX webhook_deliveries_connection ON webhook_deliveries (service_provider, provider_connection_id);

ALTER TABLE connections
    -- The time of the newest fact the status reflects; an older webhook never rolls it back.
    ADD COLUMN status_as_of timestamptz,
    -- IN_PROGRESS connections expire at this time (4 hours after the connect flow began).
    ADD COLUMN flow_expires_at timestamptz;
CREATE INDEX connections_flow_expiry ON connections (flow_expires_at) WHERE flow_expires_at IS NOT NULL;
