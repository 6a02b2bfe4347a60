-- An institution is shared by all tenants only when a provider linkstate can ask named it; one
-- that a tenant named for a provider linkstate cannot ask (FINICITY, MX) is that tenant's own.
ALTER TABLE institutions ADD COLUMN owner_account_id uuid REFERENCES accounts (id);
ALTER TABLE institutions DROP CONSTRAINT institutions_service_provider_provider_institution_id_key;
ALTER TABLE institutions ADD CONSTRAINT institutions_provider_id_owner
    UNIQUE NULLS NOT DISTINCT (service_provider, provider_institution_id, owner_account_id);

-- The latest body of each webhook source is pruned with the deliveries, oldest first.
CREATE INDEX webhook_sources_received ON webhook_sources (received_at);
