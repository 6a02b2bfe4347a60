//! The provider simulator: a Plaid-sandbox compatible HTTP API for `dev`, `simulate` and tests.
