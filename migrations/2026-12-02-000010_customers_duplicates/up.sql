-- A customer is ACTIVE until DeleteCustomer deletes it; its rows stay so that the log stays
-- whole. The tenant's external id names one ACTIVE customer: after a deletion the same external
-- id makes a new customer.
ALTER TABLE customers
    ADD COLUMN status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DELETED')),
    ADD COLUMN deleted_at timestamptz;
ALTER TABLE customers DROP CONSTRAINT customers_account_id_external_customer_id_key;
CREATE UNIQUE INDEX customers_active_external ON customers (account_id, external_customer_id)
    WHERE status = 'ACTIVE';
CREATE INDEX customers_account_external ON customers (account_id, external_customer_id, created_at DESC, id DESC);
CREATE INDEX customers_account_created ON customers (account_id, created_at DESC, id DESC);

-- An inactive duplicate points at the connection that replaced it (Meld's
-- activeDuplicateConnectionId); the active one's list is the connections pointing at it.
ALTER TABLE connections
    ADD COLUMN active_duplicate_connection_id uuid REFERENCES connections (id);
CREATE INDEX connections_active_duplicate ON connections (active_duplicate_connection_id)
    WHERE active_duplicate_connection_id IS NOT NULL;
CREATE INDEX connections_customer_institution ON connections (customer_id, institution_id);
