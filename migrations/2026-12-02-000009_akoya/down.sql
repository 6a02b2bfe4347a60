DROP TABLE consumed_refresh_tokens;
