//! Value parsers for arguments with a known shape, shared by the commands:
//! a bad value is a usage error (exit 2) naming the argument, raised by
//! clap before anything is sent or written.
//!
//! Hex lookups (`check`) accept either case and are sent lower-cased:
//! Bakong and the payments table use lower case, and some tools print md5s
//! and hashes in upper case. `add --md5` stays strict (lower case only),
//! because the merchant's application later selects the row by that exact
//! text.

use rust_decimal::Decimal;

use crate::khqr::is_md5;
use crate::money::{parse_amount, Currency, InvalidAmount, UnknownCurrency};

/// A hex argument of the wrong shape.
#[derive(Debug, thiserror::Error)]
#[error("not {what}: expected {len} hex characters (0-9, a-f), got {got}")]
pub struct NotHex {
    what: &'static str,
    len: usize,
    got: String,
}

fn hex_arg(s: &str, what: &'static str, len: usize) -> Result<String, NotHex> {
    let n = s.chars().count();
    let got = if n != len {
        format!("{n} characters")
    } else if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        format!("{c:?}")
    } else {
        return Ok(s.to_ascii_lowercase());
    };
    Err(NotHex { what, len, got })
}

/// An md5 of a KHQR string: 32 hex characters, lower-cased.
pub fn md5_arg(s: &str) -> Result<String, NotHex> {
    hex_arg(s, "an md5", 32)
}

/// A transaction hash: 64 hex characters, lower-cased.
pub fn hash_arg(s: &str) -> Result<String, NotHex> {
    hex_arg(s, "a transaction hash", 64)
}

/// A short hash: the first 8 hex characters of a hash, lower-cased.
pub fn short_hash_arg(s: &str) -> Result<String, NotHex> {
    hex_arg(s, "a short hash", 8)
}

/// An amount: a positive exact decimal.
pub fn amount_arg(s: &str) -> Result<Decimal, InvalidAmount> {
    parse_amount(s)
}

/// A currency: USD or KHR.
pub fn currency_arg(s: &str) -> Result<Currency, UnknownCurrency> {
    s.parse::<Currency>()
}

/// An md5 exactly as the payments table stores it: 32 lowercase hex.
pub fn table_md5_arg(s: &str) -> Result<String, NotTableMd5> {
    if is_md5(s) {
        Ok(s.to_string())
    } else {
        Err(NotTableMd5(s.to_string()))
    }
}

/// An md5 the payments table would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an md5 (32 lowercase hex characters)")]
pub struct NotTableMd5(String);

/// An amount written as given (`1.50` stays `1.50`), once checked.
pub fn amount_text_arg(s: &str) -> Result<String, InvalidAmount> {
    parse_amount(s).map(|_| s.trim().to_string())
}

/// An order reference (`--order-id`): 1 to 255 characters.
pub fn order_id_arg(s: &str) -> Result<String, crate::payment::BadField> {
    crate::payment::check_order_id(s).map(|()| s.to_string())
}

/// Metadata (`--metadata`): a JSON object of at most 4 KB, compacted.
pub fn metadata_arg(s: &str) -> Result<String, crate::payment::BadField> {
    crate::payment::metadata_text(s)
}

/// A KHQR string (`--qr`): decoded (tags, CRC) before anything is stored.
pub fn qr_arg(s: &str) -> Result<String, crate::khqr::KhqrError> {
    let s = s.trim();
    crate::khqr::decode(s).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_md5_refuses_upper_case() {
        assert!(table_md5_arg("B1C250304B8594E4C6B53DD44791B57A").is_err());
        assert!(table_md5_arg("b1c250304b8594e4c6b53dd44791b57a").is_ok());
    }

    #[test]
    fn hex_arguments_must_have_their_exact_length_and_are_lower_cased() {
        assert_eq!(
            md5_arg("B1C250304B8594E4C6B53DD44791B57A").expect("md5"),
            "b1c250304b8594e4c6b53dd44791b57a"
        );
        let e = md5_arg("not-hex-at-all!").expect_err("refused");
        assert!(e.to_string().contains("md5"), "{e}");
        let e = md5_arg(&"g".repeat(32)).expect_err("refused");
        assert!(e.to_string().contains("'g'"), "{e}");
        assert!(hash_arg(&"a".repeat(63)).is_err());
        assert!(hash_arg(&"a".repeat(64)).is_ok());
        assert!(short_hash_arg("1234567").is_err());
        assert!(short_hash_arg("8465d722").is_ok());
    }
}

/// An event id of the wrong shape.
#[derive(Debug, thiserror::Error)]
#[error("not an event id: expected msg_ followed by a 26-character ULID (as `events list` shows), got {0}")]
pub struct NotEventId(String);

/// An event id: `msg_` + a ULID (Crockford base32, either case).
pub fn event_id_arg(s: &str) -> Result<String, NotEventId> {
    let got = |why: String| Err(NotEventId(why));
    let Some(ulid) = s.strip_prefix("msg_") else {
        return got("no msg_ prefix".into());
    };
    match ulid::Ulid::from_string(ulid) {
        Ok(u) => Ok(format!("msg_{u}")),
        Err(_) => got(format!(
            "{:?} after msg_",
            ulid.chars().take(40).collect::<String>()
        )),
    }
}

/// A delivery status for `events list --status`.
pub fn delivery_status_arg(
    s: &str,
) -> Result<crate::store::DeliveryStatus, crate::store::UnknownDeliveryStatus> {
    s.parse()
}
