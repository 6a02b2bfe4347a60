//! Plaid: the HTTP client and the shapes of Plaid's API.
