DROP TABLE outbound_deliveries;
DROP TABLE outbound_dispatch;
DROP TABLE webhook_profiles;
