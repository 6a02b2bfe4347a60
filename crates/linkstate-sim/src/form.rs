//! `application/x-www-form-urlencoded`, both ways: Dex's token requests and Akoya's query strings
//! in, page links out. Small enough to write here rather than pull in another crate.

use std::collections::{BTreeMap, HashMap};

/// The pairs of a form body or query string; a repeated key keeps its last value.
pub fn parse(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// A query string of `pairs`, keys sorted (the map sorts them) and everything but unreserved
/// characters percent-encoded, as Akoya writes its links: `endTime=2021-02-26T00%3A00%3A00Z`.
pub fn encode(pairs: &BTreeMap<&str, String>) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One key or value decoded: `+` is a space, `%XX` a byte; a stray `%` stays as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|hex| hex::decode(hex).ok())
            {
                Some(byte) => {
                    decoded.extend(byte);
                    i += 2;
                }
                None => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// One key or value encoded, keeping only RFC 3986's unreserved characters.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_pluses_and_escapes() {
        let form = parse("grant_type=refresh_token&client_secret=a%2Bb+c%3D&empty=&bare&x=%zz");
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["client_secret"], "a+b c=");
        assert_eq!(form["empty"], "");
        assert_eq!(form["bare"], "");
        assert_eq!(form["x"], "%zz", "a stray percent stays");
        assert!(parse("").is_empty());
    }

    #[test]
    fn links_sort_keys_and_escape_colons() {
        let pairs = BTreeMap::from([
            ("startTime", "2019-02-26T00:00:00Z".to_owned()),
            ("limit", "5".to_owned()),
            ("offset", "0".to_owned()),
            ("endTime", "2021-02-26T00:00:00Z".to_owned()),
        ]);
        assert_eq!(
            encode(&pairs),
            "endTime=2021-02-26T00%3A00%3A00Z&limit=5&offset=0&startTime=2019-02-26T00%3A00%3A00Z"
        );
    }

    #[test]
    fn what_is_encoded_parses_back() {
        let pairs = BTreeMap::from([("a b", "x&y=z+é".to_owned())]);
        let form = parse(&encode(&pairs));
        assert_eq!(form["a b"], "x&y=z+é");
    }
}
