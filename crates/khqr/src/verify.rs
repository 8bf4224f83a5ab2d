//! Strict, clock-dependent checking of a KHQR: what a payer's bank app
//! would refuse. Reports the first problem by tag, and tells a well-formed
//! but expired dynamic KHQR ([`KhqrError::Expired`]) apart from a malformed
//! one.

use chrono::{DateTime, Utc};

use super::encode::check;
use super::tags;
use super::{decode, Initiation, Khqr, KhqrError};

fn missing(tag: &'static str, name: &'static str, why: &'static str) -> KhqrError {
    KhqrError::Missing { tag, name, why }
}

fn invalid(field: &'static str, tag: &'static str, reason: impl Into<String>) -> KhqrError {
    KhqrError::Invalid {
        field,
        tag,
        reason: reason.into(),
    }
}

/// Decodes `qr` and checks it as of `now`: the CRC and structure, the
/// required tags (00 = `01`, 01, 29 or 30, 52, 53, 58, 59, 60, 63), every
/// limit the encoder applies, no amount on a static KHQR, and on a dynamic
/// one an amount and an expiration (tag 99.01, 13 digits, not before the
/// creation time) that has not passed at `now`.
pub fn verify(qr: &str, now: DateTime<Utc>) -> Result<Khqr, KhqrError> {
    let k = decode(qr)?;
    match k.payload_format_indicator.as_deref() {
        None => return Err(missing("00", tags::name("00"), "every KHQR starts with it")),
        Some("01") => {}
        Some(other) => {
            return Err(invalid(
                "payload_format_indicator",
                "00",
                format!("{other:?} is not 01"),
            ))
        }
    }
    let Some(initiation) = k.initiation else {
        return Err(missing(
            "01",
            tags::name("01"),
            "it says static (11) or dynamic (12)",
        ));
    };
    if k.country_code.is_none() {
        return Err(missing("58", tags::name("58"), "every KHQR has it"));
    }
    if let Some(c) = &k.country_code {
        if c.encode_utf16().count() > 3 || c.is_empty() {
            return Err(invalid(
                "country_code",
                "58",
                format!("{c:?} is not a country code"),
            ));
        }
    }
    let req = k.to_request()?;
    check(&req)?;
    match (initiation, k.amount) {
        (Initiation::Static, Some(a)) => {
            return Err(invalid(
                "amount",
                "54",
                format!("a static KHQR (tag 01 = 11) carries no amount, this one says {a}"),
            ))
        }
        (Initiation::Static, None) => {}
        (Initiation::Dynamic, None) => {
            return Err(missing(
                "54",
                tags::name("54"),
                "a dynamic KHQR (tag 01 = 12) carries an amount",
            ))
        }
        (Initiation::Dynamic, Some(_)) => {
            let Some(t) = &k.timestamps else {
                return Err(missing(
                    "99",
                    tags::name("99"),
                    "a dynamic KHQR carries its expiration (NBC's SDK requires it since 1.0.18)",
                ));
            };
            let Some(expires) = t.expires_at else {
                return Err(missing(
                    "99.01",
                    tags::sub_name("99", "01"),
                    "a dynamic KHQR carries its expiration (NBC's SDK requires it since 1.0.18)",
                ));
            };
            if expires.timestamp_millis().to_string().len() != tags::TIMESTAMP_DIGITS {
                return Err(invalid(
                    "expires_at",
                    "99.01",
                    "is not 13-digit epoch milliseconds",
                ));
            }
            if let Some(created) = t.created_at {
                if expires < created {
                    return Err(invalid(
                        "expires_at",
                        "99.01",
                        format!("{expires} is before the creation time {created}"),
                    ));
                }
            }
            if expires < now {
                return Err(KhqrError::Expired {
                    expired_at: expires,
                });
            }
        }
    }
    Ok(k)
}
