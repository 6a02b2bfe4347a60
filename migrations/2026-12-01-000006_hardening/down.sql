DROP INDEX webhook_sources_received;
DELETE FROM institutions i WHERE owner_account_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.institution_id = i.id);
ALTER TABLE institutions DROP CONSTRAINT institutions_provider_id_owner;
ALTER TABLE institutions DROP COLUMN owner_account_id;
ALTER TABLE institutions ADD CONSTRAINT institutions_service_provider_provider_institution_id_key
    UNIQUE (service_provider, provider_institution_id);
