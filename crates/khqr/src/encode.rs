//! Building a KHQR string exactly as NBC's SDK 1.0.20 does (tag order,
//! amount formatting, defaults, refusals), so that its md5 is the one the
//! payer's bank reports.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::tags::{self, units};
use super::{crc_hex, tlv, Account, AdditionalData, AlternateLanguage, KhqrError, KhqrRequest};
use crate::money::Currency;

fn invalid(field: &'static str, tag: &'static str, reason: impl Into<String>) -> KhqrError {
    KhqrError::Invalid {
        field,
        tag,
        reason: reason.into(),
    }
}

/// Checks a text value: `required` refuses empty, then at most `max` UTF-16
/// code units. Returns `None` for an absent or empty optional value.
pub(super) fn text<'a>(
    v: Option<&'a str>,
    field: &'static str,
    tag: &'static str,
    max: usize,
    required: bool,
) -> Result<Option<&'a str>, KhqrError> {
    match v {
        None | Some("") if required => Err(invalid(field, tag, "is required and empty")),
        None | Some("") => Ok(None),
        Some(s) => {
            let n = units(s);
            if n > max {
                Err(invalid(
                    field,
                    tag,
                    format!("{n} characters (UTF-16 code units), at most {max} allowed"),
                ))
            } else {
                Ok(Some(s))
            }
        }
    }
}

/// The tag 54 text of `amount`, as the SDK writes it: KHR whole (`500`),
/// USD whole (`5`) or with exactly two decimals (`5.50`); refused when not
/// positive, with more decimals than the currency has, or longer than 13.
pub fn format_amount(amount: Decimal, currency: Currency) -> Result<String, KhqrError> {
    let bad = |reason: String| invalid("amount", "54", reason);
    if amount <= Decimal::ZERO {
        return Err(bad(format!(
            "{amount} is not a positive amount (leave the amount out for a static KHQR)"
        )));
    }
    let a = amount.normalize();
    let text = match currency {
        Currency::Khr if a.scale() > 0 => {
            return Err(bad(format!(
                "{amount} KHR has decimals; riel amounts are whole"
            )))
        }
        Currency::Usd if a.scale() > 2 => {
            return Err(bad(format!("{amount} USD has more than 2 decimals")))
        }
        _ if a.scale() == 0 => a.to_string(),
        _ => {
            let mut two = a;
            two.rescale(2);
            two.to_string()
        }
    };
    if text.len() > tags::MAX_AMOUNT {
        return Err(bad(format!(
            "{text:?} is {} characters, at most {} allowed",
            text.len(),
            tags::MAX_AMOUNT
        )));
    }
    Ok(text)
}

/// Epoch milliseconds as the 13 digits tag 99 holds.
fn millis(t: DateTime<Utc>, field: &'static str, tag: &'static str) -> Result<String, KhqrError> {
    let ms = t.timestamp_millis().to_string();
    if ms.len() != tags::TIMESTAMP_DIGITS || ms.starts_with('-') {
        return Err(invalid(
            field,
            tag,
            format!("{t} is not 13-digit epoch milliseconds (years 2001 to 2286)"),
        ));
    }
    Ok(ms)
}

/// Writes a template (tag with sub-tags), refusing one longer than 99.
fn template(
    out: &mut String,
    tag: &'static str,
    field: &'static str,
    inner: &str,
) -> Result<(), KhqrError> {
    let n = units(inner);
    if n > tags::MAX_VALUE {
        return Err(invalid(
            field,
            tag,
            format!(
                "the {} template is {n} characters, more than the 99 a two-digit length can say; shorten its values",
                tags::name(tag)
            ),
        ));
    }
    tlv::write(out, tag, inner);
    Ok(())
}

fn account(out: &mut String, a: &Account) -> Result<(), KhqrError> {
    let (tag, id) = match a {
        Account::Individual { account_id, .. } => ("29", account_id),
        Account::Merchant { account_id, .. } => ("30", account_id),
    };
    let id_tag = if tag == "29" { "29.00" } else { "30.00" };
    let id = text(Some(id), "account_id", id_tag, tags::MAX_ACCOUNT_ID, true)?.unwrap_or("");
    if !id.contains('@') {
        return Err(invalid(
            "account_id",
            id_tag,
            format!("{id:?} is not a Bakong account id (name@bank)"),
        ));
    }
    let mut inner = String::new();
    tlv::write(&mut inner, "00", id);
    match a {
        Account::Individual {
            account_information,
            acquiring_bank,
            ..
        } => {
            if let Some(v) = text(
                account_information.as_deref(),
                "account_information",
                "29.01",
                tags::MAX_ACCOUNT_INFORMATION,
                false,
            )? {
                tlv::write(&mut inner, "01", v);
            }
            if let Some(v) = text(
                acquiring_bank.as_deref(),
                "acquiring_bank",
                "29.02",
                tags::MAX_ACQUIRING_BANK,
                false,
            )? {
                tlv::write(&mut inner, "02", v);
            }
        }
        Account::Merchant {
            merchant_id,
            acquiring_bank,
            ..
        } => {
            let m = text(
                Some(merchant_id),
                "merchant_id",
                "30.01",
                tags::MAX_MERCHANT_ID,
                true,
            )?;
            let b = text(
                Some(acquiring_bank),
                "acquiring_bank",
                "30.02",
                tags::MAX_ACQUIRING_BANK,
                true,
            )?;
            tlv::write(&mut inner, "01", m.unwrap_or(""));
            tlv::write(&mut inner, "02", b.unwrap_or(""));
        }
    }
    template(out, tag, "account", &inner)
}

fn mcc(v: &str) -> Result<&str, KhqrError> {
    let v = if v.is_empty() { tags::DEFAULT_MCC } else { v };
    if v.len() > tags::MAX_MCC || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "mcc",
            "52",
            format!("{v:?} is not a merchant category code (1 to 4 digits, e.g. 5999)"),
        ));
    }
    Ok(v)
}

fn additional(out: &mut String, a: &AdditionalData) -> Result<(), KhqrError> {
    let mut inner = String::new();
    let parts = [
        ("01", "bill_number", "62.01", &a.bill_number),
        ("02", "mobile_number", "62.02", &a.mobile_number),
        ("03", "store_label", "62.03", &a.store_label),
        ("07", "terminal_label", "62.07", &a.terminal_label),
        ("08", "purpose", "62.08", &a.purpose),
    ];
    for (sub, field, tag, v) in parts {
        if let Some(v) = text(v.as_deref(), field, tag, tags::MAX_ADDITIONAL, false)? {
            tlv::write(&mut inner, sub, v);
        }
    }
    for f in &a.unknown {
        tlv::write(&mut inner, &f.tag, &f.value);
    }
    if inner.is_empty() {
        return Ok(());
    }
    template(out, "62", "additional_data", &inner)
}

fn language(out: &mut String, l: &AlternateLanguage) -> Result<(), KhqrError> {
    let pref = text(
        l.language_preference.as_deref(),
        "language_preference",
        "64.00",
        tags::MAX_LANGUAGE_PREFERENCE,
        false,
    )?;
    let name = text(
        l.name.as_deref(),
        "alternate_name",
        "64.01",
        tags::MAX_ALTERNATE_NAME,
        false,
    )?;
    let city = text(
        l.city.as_deref(),
        "alternate_city",
        "64.02",
        tags::MAX_ALTERNATE_CITY,
        false,
    )?;
    let mut inner = String::new();
    match (pref, name) {
        (Some(_), None) => {
            return Err(invalid(
                "alternate_name",
                "64.01",
                "is required with a language preference",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "language_preference",
                "64.00",
                "is required with an alternate name",
            ))
        }
        (Some(p), Some(n)) => {
            tlv::write(&mut inner, "00", p);
            tlv::write(&mut inner, "01", n);
        }
        (None, None) => {}
    }
    if let Some(c) = city {
        tlv::write(&mut inner, "02", c);
    }
    for f in &l.unknown {
        tlv::write(&mut inner, &f.tag, &f.value);
    }
    if inner.is_empty() {
        return Ok(());
    }
    template(out, "64", "alternate_language", &inner)
}

/// Checks every input field as [`encode`] does, without the timestamps
/// (used by `verify` on a decoded KHQR). Returns the tag 54 text.
pub(super) fn check(req: &KhqrRequest) -> Result<Option<String>, KhqrError> {
    let mut sink = String::new();
    write_body(&mut sink, req)
}

fn write_body(s: &mut String, req: &KhqrRequest) -> Result<Option<String>, KhqrError> {
    tlv::write(s, "01", if req.amount.is_some() { "12" } else { "11" });
    if let Some(upi) = text(
        req.upi_merchant_account.as_deref(),
        "upi_merchant_account",
        "15",
        tags::MAX_UPI,
        false,
    )? {
        if req.currency == Currency::Usd {
            return Err(invalid(
                "upi_merchant_account",
                "15",
                "a UnionPay merchant account takes KHR only, not USD",
            ));
        }
        tlv::write(s, "15", upi);
    }
    account(s, &req.account)?;
    tlv::write(s, "52", mcc(&req.mcc)?);
    tlv::write(s, "53", req.currency.numeric());
    let amount = match req.amount {
        Some(a) => {
            let text = format_amount(a, req.currency)?;
            tlv::write(s, "54", &text);
            Some(text)
        }
        None => None,
    };
    tlv::write(s, "58", tags::COUNTRY_CODE);
    let name = text(Some(&req.merchant_name), "name", "59", tags::MAX_NAME, true)?;
    tlv::write(s, "59", name.unwrap_or(""));
    let city = if req.merchant_city.is_empty() {
        tags::DEFAULT_CITY
    } else {
        &req.merchant_city
    };
    let city = text(Some(city), "city", "60", tags::MAX_CITY, true)?;
    tlv::write(s, "60", city.unwrap_or(""));
    additional(s, &req.additional_data)?;
    language(s, &req.alternate_language)?;
    Ok(amount)
}

/// Builds the KHQR string for `req`, created at `now`. With an amount it is
/// dynamic (tag 01 `12`) and carries tag 99 (creation `now`, expiration
/// `req.expires_at`, required and not before `now`); without one it is
/// static (`11`, no tag 99). Ends with `6304` and the CRC.
pub fn encode(req: &KhqrRequest, now: DateTime<Utc>) -> Result<String, KhqrError> {
    let mut s = String::new();
    tlv::write(&mut s, "00", "01");
    write_body(&mut s, req)?;
    if req.amount.is_some() {
        let expires = req.expires_at.ok_or_else(|| {
            invalid(
                "expires_at",
                "99.01",
                "a dynamic KHQR (one with an amount) needs an expiration",
            )
        })?;
        let created = millis(now, "created_at", "99.00")?;
        let expiry = millis(expires, "expires_at", "99.01")?;
        if expires.timestamp_millis() < now.timestamp_millis() {
            return Err(invalid(
                "expires_at",
                "99.01",
                format!("{expires} is before the creation time {now}"),
            ));
        }
        let mut inner = String::new();
        tlv::write(&mut inner, "00", &created);
        tlv::write(&mut inner, "01", &expiry);
        tlv::write(&mut s, "99", &inner);
    }
    s.push_str("6304");
    let crc = crc_hex(&s);
    s.push_str(&crc);
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use super::*;

    #[test]
    fn amounts_are_formatted_as_the_sdk_does() {
        let f = |v: &str, c| format_amount(v.parse().unwrap(), c);
        assert_eq!(f("5", Currency::Usd).unwrap(), "5");
        assert_eq!(f("5.00", Currency::Usd).unwrap(), "5");
        assert_eq!(f("5.5", Currency::Usd).unwrap(), "5.50");
        assert_eq!(f("0.01", Currency::Usd).unwrap(), "0.01");
        assert_eq!(f("4000", Currency::Khr).unwrap(), "4000");
        assert_eq!(f("4000.0", Currency::Khr).unwrap(), "4000");
        for (v, c) in [
            ("1.005", Currency::Usd),
            ("1.5", Currency::Khr),
            ("0", Currency::Usd),
            ("-1", Currency::Khr),
            ("12345678901234", Currency::Khr),
            ("12345678901.25", Currency::Usd),
        ] {
            let e = f(v, c).unwrap_err();
            assert_eq!(e.field(), Some("amount"), "{v} {c}: {e}");
        }
    }
}
