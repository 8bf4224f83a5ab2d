//! KHQR strings: the md5 that identifies a payment, the CRC that guards the
//! string, and the few tags the simulator and the deeplink check read.

use md5::{Digest, Md5};
use rust_decimal::Decimal;

use crate::money::{parse_amount, Currency};

const CRC16_CCITT_FALSE: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// The md5 of a whole KHQR string, as 32 lowercase hex characters.
pub fn md5_hex(qr: &str) -> String {
    let digest = Md5::digest(qr.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-16/CCITT-FALSE of `payload`, as 4 uppercase hex characters.
pub fn crc_hex(payload: &str) -> String {
    format!("{:04X}", CRC16_CCITT_FALSE.checksum(payload.as_bytes()))
}

/// Whether `s` is a well-formed md5: 32 lowercase hex characters.
pub fn is_md5(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a string is not a usable KHQR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KhqrError {
    /// The TLV structure is broken.
    #[error("malformed KHQR: {0}")]
    Malformed(String),
    /// The trailing CRC does not match the payload.
    #[error("KHQR CRC mismatch: the string says {found}, the payload gives {expected}")]
    Crc {
        /// CRC written in the string.
        found: String,
        /// CRC computed over the payload.
        expected: String,
    },
}

/// The fields of a KHQR that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Khqr {
    /// Point of initiation: true for a dynamic QR (`12`), false for static.
    pub dynamic: bool,
    /// Tag 54, if present.
    pub amount: Option<Decimal>,
    /// Tag 53.
    pub currency: Option<Currency>,
    /// Sub-tag 00 of tag 29 (individual) or 30 (merchant): the Bakong account.
    pub account_id: Option<String>,
}

fn tlv(s: &str) -> Result<Vec<(String, String)>, KhqrError> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (id, after) = rest
            .split_at_checked(2)
            .ok_or_else(|| KhqrError::Malformed("truncated tag".into()))?;
        let (len, after) = after
            .split_at_checked(2)
            .ok_or_else(|| KhqrError::Malformed(format!("tag {id} has no length")))?;
        let len: usize = len.parse().map_err(|_| {
            KhqrError::Malformed(format!("tag {id} length {len:?} is not a number"))
        })?;
        let (value, after) = after
            .split_at_checked(len)
            .ok_or_else(|| KhqrError::Malformed(format!("tag {id} runs past the end")))?;
        out.push((id.to_string(), value.to_string()));
        rest = after;
    }
    Ok(out)
}

/// Parses a KHQR string and checks its CRC.
pub fn parse(qr: &str) -> Result<Khqr, KhqrError> {
    if qr.len() < 8 || !qr.is_char_boundary(qr.len() - 4) {
        return Err(KhqrError::Malformed("too short to hold a CRC".into()));
    }
    let (payload, crc) = qr.split_at(qr.len() - 4);
    if !payload.ends_with("6304") {
        return Err(KhqrError::Malformed(
            "does not end with tag 63 (CRC)".into(),
        ));
    }
    let expected = crc_hex(payload);
    if !crc.eq_ignore_ascii_case(&expected) {
        return Err(KhqrError::Crc {
            found: crc.to_string(),
            expected,
        });
    }
    let fields = tlv(qr)?;
    let mut k = Khqr {
        dynamic: false,
        amount: None,
        currency: None,
        account_id: None,
    };
    for (id, value) in fields {
        match id.as_str() {
            "01" => k.dynamic = value == "12",
            "53" => k.currency = Currency::from_numeric(&value),
            "54" => {
                k.amount = Some(
                    parse_amount(&value)
                        .map_err(|_| KhqrError::Malformed(format!("amount {value:?}")))?,
                )
            }
            "29" | "30" => {
                if let Some((_, acc)) = tlv(&value)?.into_iter().find(|(sub, _)| sub == "00") {
                    k.account_id = Some(acc);
                }
            }
            _ => {}
        }
    }
    Ok(k)
}

/// Builds a dynamic KHQR for an individual account (used by the simulator,
/// the demo and tests to make valid strings).
pub fn build(
    account_id: &str,
    name: &str,
    amount: Decimal,
    currency: Currency,
    nonce: &str,
) -> String {
    fn field(id: &str, v: &str) -> String {
        format!("{id}{:02}{v}", v.len())
    }
    let amount = amount.normalize().to_string();
    let mut s = String::new();
    s += &field("00", "01");
    s += &field("01", "12");
    s += &field("29", &field("00", account_id));
    s += &field("52", "5999");
    s += &field("53", currency.numeric());
    s += &field("54", &amount);
    s += &field("58", "KH");
    s += &field("59", name);
    s += &field("60", "PHNOM PENH");
    s += &field("99", &field("00", nonce));
    s += "6304";
    let crc = crc_hex(&s);
    s + &crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = "00020101021229180014jonhsmith@nbcq52045999530311654035005802KH5910Jonh Smith6010PHNOM PENH99170013173949577872263046894";

    #[test]
    fn reference_vector_has_the_documented_md5_and_crc() {
        assert_eq!(md5_hex(REFERENCE), "b1c250304b8594e4c6b53dd44791b57a");
        let k = parse(REFERENCE).expect("reference vector parses");
        assert!(k.dynamic);
        assert_eq!(k.amount, Some(Decimal::from(500)));
        assert_eq!(k.currency, Some(Currency::Khr));
        assert_eq!(k.account_id.as_deref(), Some("jonhsmith@nbcq"));
    }

    #[test]
    fn a_broken_crc_is_reported() {
        let bad = REFERENCE.replace("6894", "6895");
        assert!(matches!(parse(&bad), Err(KhqrError::Crc { .. })));
    }

    #[test]
    fn built_strings_round_trip() {
        let qr = build(
            "shop@abaa",
            "Shop",
            Decimal::new(150, 2),
            Currency::Usd,
            "42",
        );
        let k = parse(&qr).expect("built string parses");
        assert_eq!(k.amount, Some(Decimal::new(15, 1)));
        assert_eq!(k.account_id.as_deref(), Some("shop@abaa"));
    }
}
