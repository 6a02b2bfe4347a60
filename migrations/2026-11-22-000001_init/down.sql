DROP TABLE jobs;
DROP TABLE events;
DROP TABLE financial_accounts;
DROP TABLE connections;
DROP TABLE institutions;
DROP TABLE customers;
DROP TABLE api_keys;
DROP TABLE accounts;
