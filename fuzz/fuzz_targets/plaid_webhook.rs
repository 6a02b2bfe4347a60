//! Plaid's webhook verifier and parser on anything a sender could put in the
//! `Plaid-Verification` header and the body: never a panic; an unsigned header never passes; a
//! JWT signed with the key passes exactly when its age and body hash are right.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use linkstate::providers::plaid::verify::{self, UnverifiedWebhook, VerificationKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// What a sender controls: the header and body, and, to reach past the signature check, the
/// claims of a JWT that the key really signs.
#[derive(Arbitrary, Debug)]
struct Delivery {
    header: String,
    body: Vec<u8>,
    signed: Option<Claims>,
}

#[derive(Arbitrary, Debug)]
struct Claims {
    kid: String,
    age_seconds: i16,
    hash_of_body: bool,
    other_hash: String,
}

/// One P-256 key pair for the whole run, and its public half as the verifier holds it.
static KEY: LazyLock<(EcdsaKeyPair, VerificationKey)> = LazyLock::new(|| {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..]),
    );
    let public = VerificationKey::from_coordinates(&x, &y, None).unwrap();
    (pair, public)
});

fuzz_target!(|delivery: Delivery| {
    let (pair, key) = &*KEY;
    let now = Utc::now();
    let body_sha256 = hex(&Sha256::digest(&delivery.body));
    let _ = linkstate::webhooks::parse_plaid(&delivery.body);
    let Some(claims) = delivery.signed else {
        let _ = verify::key_id(&delivery.header);
        let webhook = UnverifiedWebhook {
            jwt: Some(&delivery.header),
            body: &delivery.body,
        };
        assert!(
            verify::check(webhook, key, now).is_err(),
            "an unsigned header passed"
        );
        return;
    };
    let signed_hash = if claims.hash_of_body {
        body_sha256.clone()
    } else {
        claims.other_hash
    };
    let header = serde_json::json!({ "alg": "ES256", "kid": claims.kid, "typ": "JWT" });
    let payload = serde_json::json!({
        "iat": now.timestamp() - i64::from(claims.age_seconds),
        "request_body_sha256": signed_hash,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let kid_ok = claims.kid.len() <= 64 && !claims.kid.contains(|c: char| c.is_control());
    assert_eq!(verify::key_id(&jwt).is_ok(), kid_ok, "{jwt}");
    let webhook = UnverifiedWebhook {
        jwt: Some(&jwt),
        body: &delivery.body,
    };
    let verdict = verify::check(webhook, key, now);
    // One second of slack either side: `now` is read again inside nothing, but iat is whole
    // seconds.
    let fresh = claims.age_seconds.unsigned_abs() < 300;
    let right_body = signed_hash == body_sha256;
    if fresh && right_body {
        assert_eq!(verdict.unwrap().body_sha256, body_sha256);
    } else if claims.age_seconds.unsigned_abs() > 301 || !right_body {
        assert!(verdict.is_err(), "a stale or mismatched delivery passed");
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
