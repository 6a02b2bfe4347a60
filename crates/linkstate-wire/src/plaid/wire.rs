//! How Plaid's values are written on the wire: amounts as plain decimals, tokens as plain
//! strings held in a [`Secret`](crate::Secret), nullable error objects kept whole.

use serde::{Deserialize, Deserializer};

use super::error::PlaidApiError;

/// Prints a Plaid amount in plain decimal notation, digit for digit as Plaid sent it
/// (`23631.9805` stays `23631.9805`, `110` stays `110`; exponents are expanded, never rounded).
pub fn decimal_string(n: &serde_json::Number) -> String {
    let text = n.to_string();
    if !text.contains(['e', 'E']) {
        return text;
    }
    // serde_json prints very large or small floats with an exponent; numeric columns want digits.
    text.parse::<bigdecimal::BigDecimal>()
        .map(|d| d.to_plain_string())
        .unwrap_or(text)
}

/// Reads an Item's nullable `error`, keeping the whole object in [`PlaidApiError::raw`].
pub(super) fn nullable_error<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<PlaidApiError>, D::Error> {
    match Option::<serde_json::Value>::deserialize(de)? {
        None => Ok(None),
        Some(raw) => PlaidApiError::from_value(raw)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// (De)serializes a [`Secret`] as the plain string Plaid sends, so tokens stay wrapped in memory.
pub(super) mod secret_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Secret;

    pub fn serialize<S: Serializer>(secret: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
        String::deserialize(de).map(Secret::new)
    }
}

/// [`secret_string`] for a nullable value.
pub(super) mod optional_secret_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Secret;

    pub fn serialize<S: Serializer>(secret: &Option<Secret>, ser: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => ser.serialize_some(secret.expose()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
        Option::<String>::deserialize(de).map(|value| value.map(Secret::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> serde_json::Number {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn decimal_string_prints_amounts_as_sent() {
        for text in ["110", "23631.9805", "-12.5", "0.01", "1234567.89", "0"] {
            assert_eq!(decimal_string(&number(text)), text);
        }
    }

    #[test]
    fn decimal_string_expands_exponents() {
        assert_eq!(decimal_string(&number("1e21")), "1000000000000000000000");
        assert_eq!(decimal_string(&number("0.0000001")), "0.0000001");
    }
}
