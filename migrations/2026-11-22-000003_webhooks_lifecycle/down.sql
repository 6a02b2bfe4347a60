ALTER TABLE connections DROP COLUMN status_as_of, DROP COLUMN flow_expires_at;
DROP TABLE webhook_deliveries;
