//! Reading a KHQR string into typed values. Lenient where NBC's SDK decode
//! is (no required-tag, expiry or clock checks; a QR without an expiration
//! decodes), strict about structure: the CRC must match and every length
//! must be consistent, so a broken string is an error, promptly.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::tags;
use super::{
    crc_hex, tlv, AccountInfo, AccountKind, AdditionalData, AlternateLanguage, Field, Initiation,
    Khqr, KhqrError, Timestamps,
};
use crate::money::Currency;

fn malformed(tag: &str, name: &'static str, reason: impl Into<String>) -> KhqrError {
    KhqrError::Malformed {
        tag: tag.to_string(),
        name,
        reason: reason.into(),
    }
}

/// Splits off and checks the trailing `6304` + CRC (case-insensitive, as
/// the SDK compares). Returns the CRC as written.
fn check_crc(qr: &str) -> Result<&str, KhqrError> {
    let b = qr.as_bytes();
    let ok_tail = b.len() >= 8
        && b[b.len() - 8..b.len() - 4] == *b"6304"
        && b[b.len() - 4..].iter().all(u8::is_ascii_hexdigit);
    if !ok_tail {
        return Err(malformed(
            "63",
            "CRC",
            "the string does not end with 6304 and four hex digits",
        ));
    }
    // The tail is ASCII, so these are character boundaries.
    let (payload, crc) = qr.split_at(qr.len() - 4);
    let expected = crc_hex(payload);
    if !crc.eq_ignore_ascii_case(&expected) {
        return Err(KhqrError::Crc {
            found: crc.to_string(),
            expected,
        });
    }
    Ok(crc)
}

/// Epoch milliseconds (any number of digits) as a UTC time.
fn millis(v: &str, tag: &str, name: &'static str) -> Result<DateTime<Utc>, KhqrError> {
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(
            tag,
            name,
            format!("{v:?} is not epoch milliseconds"),
        ));
    }
    v.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| malformed(tag, name, format!("{v:?} is out of range")))
}

/// A decimal in plain notation (`500`, `5.50`), as tag 54 holds it.
fn amount(v: &str) -> Result<Decimal, KhqrError> {
    let bad = || {
        malformed(
            "54",
            tags::name("54"),
            format!("{v:?} is not a decimal amount"),
        )
    };
    let dots = v.bytes().filter(|&b| b == b'.').count();
    if v.is_empty()
        || v.len() > 28
        || dots > 1
        || v.starts_with('.')
        || v.ends_with('.')
        || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(bad());
    }
    Decimal::from_str(v).map_err(|_| bad())
}

/// Decodes `qr`: checks its CRC and structure, types every known tag and
/// keeps unknown ones. Does not check required tags, limits or the clock
/// (see [`super::verify`]).
pub fn decode(qr: &str) -> Result<Khqr, KhqrError> {
    let crc = check_crc(qr)?.to_string();
    let fields = tlv::read(qr, None)?;
    match fields.last() {
        Some(f) if f.tag == "63" && f.value.len() == 4 => {}
        _ => {
            return Err(malformed(
                "63",
                "CRC",
                "the CRC tag is not the last field (a length before it is off)",
            ))
        }
    }
    let mut k = Khqr {
        payload_format_indicator: None,
        initiation: None,
        upi_merchant_account: None,
        account: None,
        mcc: None,
        currency: None,
        amount: None,
        country_code: None,
        merchant_name: None,
        merchant_city: None,
        additional_data: None,
        alternate_language: None,
        timestamps: None,
        crc,
        unknown: Vec::new(),
    };
    for Field { tag, value } in fields {
        match tag.as_str() {
            "00" => k.payload_format_indicator = Some(value),
            "01" => {
                k.initiation = Some(match value.as_str() {
                    "11" => Initiation::Static,
                    "12" => Initiation::Dynamic,
                    other => {
                        return Err(malformed(
                            "01",
                            tags::name("01"),
                            format!("{other:?} is neither 11 (static) nor 12 (dynamic)"),
                        ))
                    }
                })
            }
            "15" => k.upi_merchant_account = Some(value),
            "29" | "30" => {
                if k.account.is_some() {
                    return Err(malformed(
                        &tag,
                        tags::name(&tag),
                        "a KHQR holds one account template, 29 or 30, not both",
                    ));
                }
                let (kind, parent) = if tag == "29" {
                    (AccountKind::Individual, "29")
                } else {
                    (AccountKind::Merchant, "30")
                };
                let mut a = AccountInfo {
                    kind,
                    account_id: None,
                    information: None,
                    acquiring_bank: None,
                    unknown: Vec::new(),
                };
                for f in tlv::read(&value, Some(parent))? {
                    match f.tag.as_str() {
                        "00" => a.account_id = Some(f.value),
                        "01" => a.information = Some(f.value),
                        "02" => a.acquiring_bank = Some(f.value),
                        _ => a.unknown.push(f),
                    }
                }
                k.account = Some(a);
            }
            "52" => k.mcc = Some(value),
            "53" => {
                k.currency = Some(Currency::from_numeric(&value).ok_or_else(|| {
                    malformed(
                        "53",
                        tags::name("53"),
                        format!("{value:?} is neither 840 (USD) nor 116 (KHR)"),
                    )
                })?)
            }
            "54" => k.amount = Some(amount(&value)?),
            "58" => k.country_code = Some(value),
            "59" => k.merchant_name = Some(value),
            "60" => k.merchant_city = Some(value),
            "62" => {
                let mut a = AdditionalData::default();
                for f in tlv::read(&value, Some("62"))? {
                    let slot = match f.tag.as_str() {
                        "01" => &mut a.bill_number,
                        "02" => &mut a.mobile_number,
                        "03" => &mut a.store_label,
                        "07" => &mut a.terminal_label,
                        "08" => &mut a.purpose,
                        _ => {
                            a.unknown.push(f);
                            continue;
                        }
                    };
                    *slot = Some(f.value);
                }
                k.additional_data = Some(a);
            }
            "64" => {
                let mut l = AlternateLanguage::default();
                for f in tlv::read(&value, Some("64"))? {
                    match f.tag.as_str() {
                        "00" => l.language_preference = Some(f.value),
                        "01" => l.name = Some(f.value),
                        "02" => l.city = Some(f.value),
                        _ => l.unknown.push(f),
                    }
                }
                k.alternate_language = Some(l);
            }
            "99" => {
                let mut t = Timestamps {
                    created_at: None,
                    expires_at: None,
                    unknown: Vec::new(),
                };
                for f in tlv::read(&value, Some("99"))? {
                    match f.tag.as_str() {
                        "00" => {
                            t.created_at =
                                Some(millis(&f.value, "99.00", tags::sub_name("99", "00"))?)
                        }
                        "01" => {
                            t.expires_at =
                                Some(millis(&f.value, "99.01", tags::sub_name("99", "01"))?)
                        }
                        _ => t.unknown.push(f),
                    }
                }
                k.timestamps = Some(t);
            }
            "63" => {}
            _ => k.unknown.push(Field { tag, value }),
        }
    }
    Ok(k)
}
