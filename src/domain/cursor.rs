//! Positions in the event log, handed to clients as opaque strings.
//!
//! A position is `(transaction, sequence)`: the id of the database transaction that appended the
//! event, then the event's sequence number within the log. Readers only return events whose
//! transaction is older than every transaction still running, so every event that becomes
//! visible later sorts after every position already handed out: resuming after a cursor can
//! never skip an event that committed late.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    /// The appending transaction's id (`xid8`).
    pub transaction: u64,
    /// The event's sequence number.
    pub sequence: i64,
}

/// A cursor string that linkstate did not hand out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cursor is not one linkstate handed out")]
pub struct MalformedCursor;

impl Cursor {
    /// The position before every event.
    pub const START: Cursor = Cursor {
        transaction: 0,
        sequence: 0,
    };

    /// The position after every event of transactions older than `transaction`.
    pub fn before_transaction(transaction: u64) -> Cursor {
        Cursor {
            transaction: transaction.saturating_sub(1),
            sequence: i64::MAX,
        }
    }

    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.transaction.to_be_bytes());
        bytes[8..].copy_from_slice(&self.sequence.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor a client got from us.
    pub fn decode(text: &str) -> Result<Cursor, MalformedCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedCursor)?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| MalformedCursor)?;
        let transaction = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let sequence = i64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
        // Positions are stored as PostgreSQL bigints: nothing we handed out is beyond them.
        if sequence < 0 || i64::try_from(transaction).is_err() {
            return Err(MalformedCursor);
        }
        Ok(Cursor {
            transaction,
            sequence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cursor = Cursor {
            transaction: 123_456,
            sequence: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn rejects_strangers() {
        assert_eq!(Cursor::decode("not a cursor"), Err(MalformedCursor));
        assert_eq!(Cursor::decode(""), Err(MalformedCursor));
        let beyond = Cursor {
            transaction: 1 << 63,
            sequence: 1,
        };
        assert_eq!(Cursor::decode(&beyond.encode()), Err(MalformedCursor));
    }

    #[test]
    fn orders_by_transaction_first() {
        let early = Cursor {
            transaction: 1,
            sequence: 99,
        };
        let late = Cursor {
            transaction: 2,
            sequence: 1,
        };
        assert!(early < late);
        assert!(Cursor::before_transaction(2) >= early);
        assert!(Cursor::before_transaction(2) < late);
    }
}
