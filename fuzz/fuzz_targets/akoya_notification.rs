//! Akoya's notification parser on any body: never a panic, and what it accepts has its fields
//! within the bounds the store relies on.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(notification) = linkstate::webhooks::parse_akoya(body) {
        for field in [&notification.category, &notification.notification_type] {
            assert!(
                field.chars().count() <= 255 && !field.contains('\0'),
                "{field:?}"
            );
        }
        if let Some(subject) = notification.subject_id() {
            assert!(
                subject.chars().count() <= 255 && !subject.contains('\0'),
                "{subject:?}"
            );
        }
    }
});
