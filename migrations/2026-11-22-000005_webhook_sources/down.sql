DROP INDEX webhook_deliveries_processed;
DROP TABLE webhook_sources;
DELETE FROM webhook_deliveries d USING webhook_deliveries newer
WHERE newer.service_provider = d.service_provider AND newer.body_sha256 = d.body_sha256
  AND newer.received_at > d.received_at;
ALTER TABLE webhook_deliveries ADD UNIQUE (service_provider, body_sha256);
