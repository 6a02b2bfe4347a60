-- Plaid's webhooks carry no id and are signed again at each retry, so a delivery is known by its
-- body. But the same body can also be a genuine repeat: an item that needs a login again after it
-- was repaired sends the very same ITEM ERROR. A body is therefore a retry only while it is still
-- the latest thing heard from its source (the item); this table keeps that latest body.
CREATE TABLE webhook_sources (
    service_provider text NOT NULL,
    -- The provider's item id, or the body's hash for a webhook about no item.
    source text NOT NULL,
    body_sha256 text NOT NULL,
    delivery_id uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (service_provider, source)
);
INSERT INTO webhook_sources (service_provider, source, body_sha256, delivery_id, received_at)
SELECT DISTINCT ON (service_provider, coalesce(provider_connection_id, body_sha256))
       service_provider, coalesce(provider_connection_id, body_sha256), body_sha256, id, received_at
FROM webhook_deliveries
ORDER BY service_provider, coalesce(provider_connection_id, body_sha256), received_at DESC;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_service_provider_body_sha256_key;
-- Processed deliveries are pruned once older than the event retention, oldest first.
CREATE INDEX webhook_deliveries_processed ON webhook_deliveries (received_at) WHERE processed_at IS NOT NULL;
