//! Outbound webhook signatures on any secret, id, time, URL and body: never a panic; the
//! Standard Webhooks signature is the one the reference implementation computes.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use linkstate::domain::webhook_signature::{
    Signers, SigningSecret, meld_signature, signature_headers, standard_signature,
};

#[derive(Arbitrary, Debug)]
struct Attempt {
    secret: String,
    previous: Option<String>,
    id: String,
    timestamp: i64,
    url: String,
    body: String,
}

fuzz_target!(|attempt: Attempt| {
    let _ = meld_signature(
        &attempt.secret,
        &attempt.id,
        &attempt.url,
        attempt.body.as_bytes(),
    );
    let Ok(secret) = SigningSecret::parse(&attempt.secret) else {
        return;
    };
    let ours = standard_signature(
        &secret,
        &attempt.id,
        attempt.timestamp,
        attempt.body.as_bytes(),
    );
    let reference = standardwebhooks::Webhook::new(&attempt.secret)
        .and_then(|hook| hook.sign(&attempt.id, attempt.timestamp, attempt.body.as_bytes()))
        .expect("the reference takes every secret we take");
    assert_eq!(ours, reference);
    let signers = Signers {
        current: secret,
        previous: attempt
            .previous
            .as_deref()
            .and_then(|p| SigningSecret::parse(p).ok()),
    };
    if let Some(at) =
        chrono::DateTime::from_timestamp(attempt.timestamp.clamp(0, 253_402_300_799), 0)
    {
        let headers = signature_headers(
            &signers,
            &attempt.id,
            &attempt.url,
            attempt.body.as_bytes(),
            at,
        );
        assert!(headers[4].1.starts_with(&ours[..3]));
    }
});
