//! Event cursors and page tokens on any text a client could send: never a panic, and whatever
//! decodes is a position the database can hold that encodes back to itself.

#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use linkstate::api::grpc::request;
use linkstate::domain::cursor::Cursor;
use linkstate::domain::ids::FinancialAccountId;

fuzz_target!(|text: &str| {
    if let Ok(cursor) = Cursor::decode(text) {
        assert!(i64::try_from(cursor.transaction).is_ok() && cursor.sequence >= 0);
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    }
    if let Ok(Some((date, _))) = request::decode_token::<(NaiveDate, uuid::Uuid)>(text) {
        let _ = request::token_date(date);
    }
    let _ = request::decode_token::<FinancialAccountId>(text);
    let _ = request::decode_token::<serde_json::Value>(text);
});
