DROP INDEX connections_customer_institution;
DROP INDEX connections_active_duplicate;
ALTER TABLE connections DROP COLUMN active_duplicate_connection_id;
DROP INDEX customers_account_created;
DROP INDEX customers_account_external;
DROP INDEX customers_active_external;
ALTER TABLE customers ADD CONSTRAINT customers_account_id_external_customer_id_key
    UNIQUE (account_id, external_customer_id);
ALTER TABLE customers DROP COLUMN deleted_at, DROP COLUMN status;
