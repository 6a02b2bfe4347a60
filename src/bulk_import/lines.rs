//! The input file, one line at a time: split without reading the file into memory, each line
//! hashed (so a state file can tell that it changed) and checked by the rules of a request.

use std::io::{self, BufRead};

use sha2::{Digest, Sha256};

use crate::domain::import::{ImportItem, ProviderCredentials, RawImportItem, validate_item};
use crate::domain::input::excerpt;
use crate::domain::secret::Secret;
use crate::domain::service_provider::ServiceProvider;
use crate::proto;

/// Longest line read: an item is a few hundred bytes (credentials at most 4 KiB), so a longer
/// line is not an item, and reading it whole would let one line grow the process.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A line's fingerprint: the first 8 bytes of its SHA-256, never zero (zero means "none").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineHash(pub u64);

impl LineHash {
    /// The hash of a line's bytes, without its line ending.
    pub fn of(line: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(line))
    }

    fn from_digest(digest: &[u8]) -> Self {
        let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        Self(first.max(1))
    }

    /// As the state file writes it.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    /// As the state file wrote it.
    pub fn from_hex(text: &str) -> Option<Self> {
        u64::from_str_radix(text, 16)
            .ok()
            .filter(|n| *n != 0)
            .map(Self)
    }
}

/// One line as read: its number (from 1, as an editor counts), its hash, and its bytes, or
/// `None` when it was longer than [`MAX_LINE_BYTES`].
pub struct RawLine<'a> {
    /// The line's number.
    pub number: u64,
    /// The hash of the whole line, however long.
    pub hash: LineHash,
    /// The line without its ending; `None` when too long to be an item.
    pub bytes: Option<&'a [u8]>,
}

impl RawLine<'_> {
    /// A line holding only white space is no item: it is skipped, not reported.
    pub fn is_blank(&self) -> bool {
        self.bytes
            .is_some_and(|bytes| bytes.iter().all(u8::is_ascii_whitespace))
    }
}

/// Splits a reader into lines, keeping at most [`MAX_LINE_BYTES`] of one line in memory.
pub struct Lines<R> {
    reader: R,
    buffer: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buffer: Vec::new(),
            number: 0,
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        self.buffer.clear();
        let mut hasher = Sha256::new();
        let mut seen_any = false;
        let mut too_long = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            seen_any = true;
            let (chunk, used, ended) = match memchr::memchr(b'\n', available) {
                Some(at) => (&available[..at], at + 1, true),
                None => (available, available.len(), false),
            };
            hasher.update(chunk);
            if !too_long && self.buffer.len() + chunk.len() <= MAX_LINE_BYTES + 1 {
                self.buffer.extend_from_slice(chunk);
            } else {
                too_long = true;
                self.buffer.clear();
            }
            self.reader.consume(used);
            if ended {
                break;
            }
        }
        if !seen_any {
            return Ok(None);
        }
        self.number += 1;
        // A Windows line ending is part of no item; the hash covers every byte before `\n`.
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        let hash = LineHash::from_digest(&hasher.finalize());
        let too_long = too_long || self.buffer.len() > MAX_LINE_BYTES;
        Ok(Some(RawLine {
            number: self.number,
            hash,
            bytes: (!too_long).then_some(self.buffer.as_slice()),
        }))
    }
}

/// A line that can be sent: the item as the request carries it, with what the report names.
#[derive(Clone, Debug)]
pub struct Item {
    /// The item, as `ImportConnection` carries it.
    pub connection: proto::ImportConnection,
    /// The credential it carries, so that no message passed on can quote it.
    pub credential: Secret,
}

/// Why a line is not sent.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLine {
    /// The external customer id, when the line named one.
    pub external_customer_id: Option<String>,
    /// What is wrong, quoting no more than an excerpt, and never a credential.
    pub message: String,
}

/// Reads one line as an `ImportConnection` in its JSON form (camelCase, or the proto field
/// names), checked by the rules of a request, so that no batch is refused as a whole.
pub fn parse(line: &[u8]) -> Result<Item, BadLine> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|error| BadLine {
            external_customer_id: None,
            message: json_error(&error),
        })?;
    let external_customer_id = object
        .get("externalCustomerId")
        .or_else(|| object.get("external_customer_id"))
        .and_then(|value| value.as_str())
        .map(str::to_string);
    let bad = |message: String| BadLine {
        external_customer_id: external_customer_id.clone(),
        message,
    };
    let raw = raw_item(object).map_err(bad)?;
    let item = validate_item(raw).map_err(|rejection| bad(rejection.to_string()))?;
    Ok(to_request(item))
}

/// What a JSON parser's error says, without the values it may quote.
fn json_error(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Data => "not a JSON object".to_string(),
        _ => format!("not valid JSON (column {})", error.column()),
    }
}

/// The fields of one item, each a string; any other field is refused, so that a misspelt
/// name (`externalCustomerID`) is not silently dropped.
fn raw_item(object: serde_json::Map<String, serde_json::Value>) -> Result<RawImportItem, String> {
    let mut raw = RawImportItem::default();
    for (key, value) in object {
        let serde_json::Value::String(text) = value else {
            return Err(format!("{} must be a string", excerpt(&key)));
        };
        match key.as_str() {
            "serviceProvider" | "service_provider" => {
                raw.service_provider = Some(service_provider(&text)?);
            }
            "externalCustomerId" | "external_customer_id" => raw.external_customer_id = text,
            "accessToken" | "access_token" => raw.access_token = Secret::new(text),
            "refreshToken" | "refresh_token" => raw.refresh_token = Secret::new(text),
            "providerId" | "provider_id" => raw.provider_id = text,
            _ => return Err(format!("unknown field {}", excerpt(&key))),
        }
    }
    Ok(raw)
}

fn service_provider(text: &str) -> Result<ServiceProvider, String> {
    text.parse()
        .map_err(|_| format!("serviceProvider {} is not a provider", excerpt(text)))
}

/// A checked item as the request carries it.
fn to_request(item: ImportItem) -> Item {
    let provider =
        proto::service_provider::Value::from_str_name(item.credentials.service_provider().as_str())
            .unwrap_or_default();
    let mut connection = proto::ImportConnection {
        service_provider: provider as i32,
        external_customer_id: item.external_customer_id.unwrap_or_default(),
        ..Default::default()
    };
    let credential = match item.credentials {
        ProviderCredentials::Plaid { access_token } => {
            connection.access_token = access_token.expose().to_string();
            access_token
        }
        ProviderCredentials::Akoya {
            refresh_token,
            provider_id,
        } => {
            connection.refresh_token = refresh_token.expose().to_string();
            connection.provider_id = provider_id;
            refresh_token
        }
    };
    Item {
        connection,
        credential,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, Option<Vec<u8>>)> {
        let mut lines = Lines::new(io::BufReader::with_capacity(16, input));
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push((line.number, line.bytes.map(<[u8]>::to_vec)));
        }
        out
    }

    #[test]
    fn splits_lines_across_buffer_boundaries_and_strips_endings() {
        let read = lines(b"first line, longer than the buffer\r\nsecond\n\nlast");
        assert_eq!(
            read,
            vec![
                (1, Some(b"first line, longer than the buffer".to_vec())),
                (2, Some(b"second".to_vec())),
                (3, Some(Vec::new())),
                (4, Some(b"last".to_vec())),
            ]
        );
    }

    #[test]
    fn a_line_too_long_is_marked_without_being_kept() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nnext\n");
        let read = lines(&input);
        assert_eq!(read, vec![(1, None), (2, Some(b"next".to_vec()))]);
    }

    #[test]
    fn the_hash_covers_the_line_and_not_its_ending() {
        let mut split = Lines::new(io::BufReader::new(&b"abc\r\nabc\n"[..]));
        let first = split.next_line().unwrap().unwrap().hash;
        assert_ne!(
            first,
            LineHash::of(b"abc"),
            "the \\r is part of what was read"
        );
        let second = split.next_line().unwrap().unwrap().hash;
        assert_eq!(second, LineHash::of(b"abc"));
        assert_eq!(LineHash::from_hex(&second.to_hex()), Some(second));
    }

    #[test]
    fn parses_an_item_in_either_field_naming() {
        let item =
            parse(br#"{"serviceProvider":"PLAID","externalCustomerId":"c-1","accessToken":"t"}"#)
                .unwrap();
        assert_eq!(item.connection.external_customer_id, "c-1");
        assert_eq!(item.connection.access_token, "t");
        let item =
            parse(br#"{"service_provider":"AKOYA","refresh_token":"r","provider_id":"mikomo"}"#)
                .unwrap();
        assert_eq!(item.connection.provider_id, "mikomo");
        assert_eq!(item.credential.expose(), "r");
    }

    #[test]
    fn bad_lines_say_why_without_quoting_values() {
        let cases: [(&[u8], &str); 6] = [
            (b"{not json", "not valid JSON (column 2)"),
            (br#"["secret-token"]"#, "not a JSON object"),
            (
                br#"{"serviceProvider":"MX","accessToken":"t"}"#,
                "importing only works for PLAID and AKOYA, not MX",
            ),
            (
                br#"{"serviceProvider":"PLAID","accessToken":7}"#,
                "\"accessToken\" must be a string",
            ),
            (
                br#"{"serviceProvider":"PLAID","externalCustomerID":"c","accessToken":"t"}"#,
                "unknown field \"externalCustomerID\"",
            ),
            (
                br#"{"serviceProvider":"PLAID","externalCustomerId":"c-9"}"#,
                "accessToken is required for PLAID",
            ),
        ];
        for (line, message) in cases {
            assert_eq!(parse(line).unwrap_err().message, message);
        }
        let bad = parse(br#"{"serviceProvider":"PLAID","externalCustomerId":"c-9"}"#).unwrap_err();
        assert_eq!(bad.external_customer_id.as_deref(), Some("c-9"));
    }
}
