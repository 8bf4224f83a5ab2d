//! KHQR, the QR payload every Cambodian banking app scans: building it
//! ([`encode`]) the way NBC's official SDK (npm `bakong-khqr` 1.0.20) does,
//! reading it back ([`decode`], lenient, used by the simulator and
//! `deeplink`), checking it strictly against a clock ([`verify`]),
//! finding every field NBC's SDK refuses and every value it lets through
//! although bank apps refuse it ([`field_problems`]), and drawing it
//! ([`render`]). Also owns the md5 that identifies a payment and
//! the CRC that guards the string. [`money`] holds the currencies and the
//! exact decimal amounts (never floats) the payload carries.
//!
//! Lengths are counted in UTF-16 code units, as the JavaScript SDK counts
//! them, so a merchant name in Khmer carries more UTF-8 bytes than its
//! length field says; the md5 and the CRC are still over the UTF-8 bytes.
//!
//! ```
//! use bakong_khqr::{self as khqr, render, KhqrRequest};
//! use bakong_khqr::money::Currency;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = chrono::Utc::now();
//! let mut req = KhqrRequest::individual("shop@devb", "Sok Chea Shop", "Phnom Penh");
//! req.currency = Currency::Usd;
//! req.amount = Some("5.00".parse()?);
//! req.expires_at = Some(now + chrono::Duration::minutes(10));
//! req.additional_data.bill_number = Some("INV-1042".into());
//! let qr = khqr::encode(&req, now)?; // as NBC's SDK writes it
//! let md5 = khqr::md5_hex(&qr); // the payments row's key
//! assert_eq!(khqr::decode(&qr)?.amount, req.amount);
//! assert!(khqr::verify(&qr, now)?.is_dynamic());
//! let later = now + chrono::Duration::minutes(11);
//! assert!(khqr::verify(&qr, later).unwrap_err().is_expired());
//! let _terminal = render::terminal(&qr, render::Background::Dark)?;
//! let _png = render::png(&qr, 8)?;
//! # let _ = md5;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod crc;
mod decode;
mod encode;
mod fields;
pub mod money;
pub mod render;
mod tags;
mod tlv;
mod verify;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::money::Currency;

pub use self::crc::{crc_hex, is_md5, md5_hex};
pub use self::decode::decode;
pub use self::encode::{encode, format_amount};
pub use self::fields::{field_problems, field_warnings, FieldProblem, FieldWarning, WarningKind};
pub use self::verify::verify;

/// Why a KHQR, or the input for one, is refused. Every variant names the
/// tag (and for inputs, the field) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KhqrError {
    /// An input value (or a decoded one, in [`verify`]) breaks a KHQR rule.
    #[error("{field} (tag {tag}): {reason}")]
    Invalid {
        /// The input field: the `[merchant]` key where there is one
        /// (`name`, `city`, `account_id`...), else `amount`, `bill_number`,
        /// `purpose`, `expires_at`...
        field: &'static str,
        /// The tag (or `tag.sub-tag`) it is written to.
        tag: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The tag-length-value structure is broken.
    #[error("malformed KHQR at tag {tag} ({name}): {reason}")]
    Malformed {
        /// The tag, or `tag.sub-tag`, or `?` when not even a tag is readable.
        tag: String,
        /// What that tag holds, when known.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The trailing CRC does not match the payload.
    #[error("KHQR CRC (tag 63) mismatch: the string says {found}, the payload gives {expected}")]
    Crc {
        /// CRC written in the string.
        found: String,
        /// CRC computed over the payload.
        expected: String,
    },
    /// A tag the KHQR needs is absent.
    #[error("KHQR is missing tag {tag} ({name}): {why}")]
    Missing {
        /// The tag or `tag.sub-tag`.
        tag: &'static str,
        /// What it holds.
        name: &'static str,
        /// Why it is required here.
        why: &'static str,
    },
    /// A well-formed dynamic KHQR whose expiration has passed.
    #[error("this dynamic KHQR expired at {expired_at} (tag 99.01)")]
    Expired {
        /// Its expiration time.
        expired_at: DateTime<Utc>,
    },
}

impl KhqrError {
    /// Whether the string is well formed and only its time has passed.
    pub fn is_expired(&self) -> bool {
        matches!(self, KhqrError::Expired { .. })
    }

    /// The input field at fault, for [`KhqrError::Invalid`].
    pub fn field(&self) -> Option<&'static str> {
        match self {
            KhqrError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A tag (or sub-tag) and its value, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Two digits.
    pub tag: String,
    /// The value.
    pub value: String,
}

/// Static (paid with any amount, many times) or dynamic (one amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Initiation {
    /// Point of initiation `11`: no amount.
    Static,
    /// Point of initiation `12`: an amount and an expiration.
    Dynamic,
}

impl Initiation {
    /// The tag 01 value.
    pub fn code(self) -> &'static str {
        match self {
            Initiation::Static => "11",
            Initiation::Dynamic => "12",
        }
    }
}

/// Individual account (tag 29) or merchant account (tag 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Tag 29: a person's (or a small shop's) Bakong account.
    #[default]
    Individual,
    /// Tag 30: a merchant registered with an acquiring bank.
    Merchant,
}

/// Who receives the money, as the encoder takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// Tag 29.
    Individual {
        /// Sub-tag 00, `name@bank`, at most 32.
        account_id: String,
        /// Sub-tag 01, optional, at most 32.
        account_information: Option<String>,
        /// Sub-tag 02, optional, at most 32.
        acquiring_bank: Option<String>,
    },
    /// Tag 30.
    Merchant {
        /// Sub-tag 00, `name@bank`, at most 32.
        account_id: String,
        /// Sub-tag 01, at most 32.
        merchant_id: String,
        /// Sub-tag 02, at most 32.
        acquiring_bank: String,
    },
}

impl Account {
    /// The Bakong account id (sub-tag 00).
    pub fn account_id(&self) -> &str {
        match self {
            Account::Individual { account_id, .. } | Account::Merchant { account_id, .. } => {
                account_id
            }
        }
    }
}

/// Tag 62, additional data. Empty strings count as absent (as in the SDK).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AdditionalData {
    /// Sub-tag 01, at most 25.
    pub bill_number: Option<String>,
    /// Sub-tag 02, at most 25.
    pub mobile_number: Option<String>,
    /// Sub-tag 03, at most 25.
    pub store_label: Option<String>,
    /// Sub-tag 07, at most 25.
    pub terminal_label: Option<String>,
    /// Sub-tag 08, purpose of transaction, at most 25.
    pub purpose: Option<String>,
    /// Sub-tags this module does not know, as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Field>,
}

/// Tag 64, the merchant's name and city in another language.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AlternateLanguage {
    /// Sub-tag 00, e.g. `km`, at most 2.
    pub language_preference: Option<String>,
    /// Sub-tag 01, at most 25; required with a language preference.
    pub name: Option<String>,
    /// Sub-tag 02, at most 15.
    pub city: Option<String>,
    /// Sub-tags this module does not know, as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Field>,
}

/// Everything [`encode`] needs. A KHQR with an amount is dynamic and needs
/// `expires_at`; without one it is static.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KhqrRequest {
    /// Tag 29 or 30.
    pub account: Account,
    /// Tag 59, at most 25.
    pub merchant_name: String,
    /// Tag 60, at most 15 (`Phnom Penh` when empty, as in the SDK).
    pub merchant_city: String,
    /// Tag 52, 1 to 4 digits (`5999` when empty, as in the SDK).
    pub mcc: String,
    /// Tag 53.
    pub currency: Currency,
    /// Tag 54: `None` for a static KHQR.
    pub amount: Option<Decimal>,
    /// Tag 62.
    pub additional_data: AdditionalData,
    /// Tag 64.
    pub alternate_language: AlternateLanguage,
    /// Tag 15, UnionPay merchant account, KHR only, at most 99.
    pub upi_merchant_account: Option<String>,
    /// Tag 99 sub-tag 01: required for a dynamic KHQR, ignored for a static one.
    pub expires_at: Option<DateTime<Utc>>,
}

impl KhqrRequest {
    /// A static KHQR for an individual account, with the SDK's defaults
    /// (MCC 5999, KHR, no optional tag); set the other fields as needed.
    pub fn individual(account_id: &str, merchant_name: &str, merchant_city: &str) -> Self {
        KhqrRequest {
            account: Account::Individual {
                account_id: account_id.into(),
                account_information: None,
                acquiring_bank: None,
            },
            merchant_name: merchant_name.into(),
            merchant_city: merchant_city.into(),
            mcc: tags::DEFAULT_MCC.into(),
            currency: Currency::Khr,
            amount: None,
            additional_data: AdditionalData::default(),
            alternate_language: AlternateLanguage::default(),
            upi_merchant_account: None,
            expires_at: None,
        }
    }

    /// Encodes with `now` as the creation time (see [`encode`]).
    pub fn encode(&self, now: DateTime<Utc>) -> Result<String, KhqrError> {
        encode(self, now)
    }
}

/// Tag 29 or 30 as read: every sub-tag optional, so that [`decode`] stays
/// lenient; [`verify`] checks what is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    /// Which template it came from.
    pub kind: AccountKind,
    /// Sub-tag 00.
    pub account_id: Option<String>,
    /// Sub-tag 01: account information (tag 29) or merchant id (tag 30).
    pub information: Option<String>,
    /// Sub-tag 02.
    pub acquiring_bank: Option<String>,
    /// Sub-tags this module does not know, as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Field>,
}

/// Tag 99 as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timestamps {
    /// Sub-tag 00, creation (13-digit epoch milliseconds in the string).
    pub created_at: Option<DateTime<Utc>>,
    /// Sub-tag 01, expiration.
    pub expires_at: Option<DateTime<Utc>>,
    /// Sub-tags this module does not know, as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Field>,
}

/// A decoded KHQR: every known tag typed, unknown tags kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Khqr {
    /// Tag 00.
    pub payload_format_indicator: Option<String>,
    /// Tag 01.
    pub initiation: Option<Initiation>,
    /// Tag 15.
    pub upi_merchant_account: Option<String>,
    /// Tag 29 or 30.
    pub account: Option<AccountInfo>,
    /// Tag 52.
    pub mcc: Option<String>,
    /// Tag 53.
    pub currency: Option<Currency>,
    /// Tag 54.
    pub amount: Option<Decimal>,
    /// Tag 58.
    pub country_code: Option<String>,
    /// Tag 59.
    pub merchant_name: Option<String>,
    /// Tag 60.
    pub merchant_city: Option<String>,
    /// Tag 62.
    pub additional_data: Option<AdditionalData>,
    /// Tag 64.
    pub alternate_language: Option<AlternateLanguage>,
    /// Tag 99.
    pub timestamps: Option<Timestamps>,
    /// Tag 63, as written.
    pub crc: String,
    /// Top-level tags this module does not know, as read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Field>,
}

impl Khqr {
    /// Whether tag 01 says dynamic (`12`).
    pub fn is_dynamic(&self) -> bool {
        self.initiation == Some(Initiation::Dynamic)
    }

    /// The receiving Bakong account (tag 29/30 sub-tag 00).
    pub fn account_id(&self) -> Option<&str> {
        self.account.as_ref().and_then(|a| a.account_id.as_deref())
    }

    /// The expiration (tag 99 sub-tag 01), if any.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.timestamps.as_ref().and_then(|t| t.expires_at)
    }

    /// The creation time (tag 99 sub-tag 00), if any.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.timestamps.as_ref().and_then(|t| t.created_at)
    }

    /// The input that would encode to this KHQR (the creation time aside),
    /// refused where a required part is missing.
    pub fn to_request(&self) -> Result<KhqrRequest, KhqrError> {
        let missing = |tag, name| KhqrError::Missing {
            tag,
            name,
            why: "every KHQR has it",
        };
        let acc = self
            .account
            .as_ref()
            .ok_or(missing("29", "individual or merchant account (29 or 30)"))?;
        let account_id = acc
            .account_id
            .clone()
            .ok_or(missing("29.00", "Bakong account id"))?;
        let account = match acc.kind {
            AccountKind::Individual => Account::Individual {
                account_id,
                account_information: acc.information.clone(),
                acquiring_bank: acc.acquiring_bank.clone(),
            },
            AccountKind::Merchant => Account::Merchant {
                account_id,
                merchant_id: acc.information.clone().ok_or(KhqrError::Missing {
                    tag: "30.01",
                    name: "merchant id",
                    why: "a merchant account (tag 30) has it",
                })?,
                acquiring_bank: acc.acquiring_bank.clone().ok_or(KhqrError::Missing {
                    tag: "30.02",
                    name: "acquiring bank",
                    why: "a merchant account (tag 30) has it",
                })?,
            },
        };
        Ok(KhqrRequest {
            account,
            merchant_name: self
                .merchant_name
                .clone()
                .ok_or(missing("59", "merchant name"))?,
            merchant_city: self
                .merchant_city
                .clone()
                .ok_or(missing("60", "merchant city"))?,
            mcc: self
                .mcc
                .clone()
                .ok_or(missing("52", "merchant category code"))?,
            currency: self.currency.ok_or(missing("53", "transaction currency"))?,
            amount: self.amount,
            additional_data: self.additional_data.clone().unwrap_or_default(),
            alternate_language: self.alternate_language.clone().unwrap_or_default(),
            upi_merchant_account: self.upi_merchant_account.clone(),
            expires_at: self.expires_at(),
        })
    }
}

/// Builds a valid dynamic KHQR for an individual account, created now and
/// expiring in a day, with `nonce` as its bill number so that equal amounts
/// give distinct strings (used by the demo and tests).
pub fn build(
    account_id: &str,
    name: &str,
    amount: Decimal,
    currency: Currency,
    nonce: &str,
) -> Result<String, KhqrError> {
    let now = Utc::now();
    let mut req = KhqrRequest::individual(account_id, name, "Phnom Penh");
    req.currency = currency;
    req.amount = Some(amount);
    req.expires_at = Some(now + chrono::Duration::days(1));
    req.additional_data.bill_number = Some(nonce.to_string());
    encode(&req, now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use super::*;

    const REFERENCE: &str = "00020101021229180014jonhsmith@nbcq52045999530311654035005802KH5910Jonh Smith6010PHNOM PENH99170013173949577872263046894";

    #[test]
    fn reference_vector_decodes_with_the_documented_md5() {
        assert_eq!(md5_hex(REFERENCE), "b1c250304b8594e4c6b53dd44791b57a");
        let k = decode(REFERENCE).unwrap();
        assert!(k.is_dynamic());
        assert_eq!(k.amount, Some(Decimal::from(500)));
        assert_eq!(k.currency, Some(Currency::Khr));
        assert_eq!(k.account_id(), Some("jonhsmith@nbcq"));
        assert!(k.created_at().is_some());
        assert_eq!(k.expires_at(), None);
    }

    #[test]
    fn reference_vector_fails_verify_for_its_missing_expiration() {
        let e = verify(REFERENCE, Utc::now()).unwrap_err();
        assert!(matches!(e, KhqrError::Missing { tag: "99.01", .. }), "{e}");
    }

    #[test]
    fn a_broken_crc_is_reported() {
        let bad = REFERENCE.replace("6894", "6895");
        assert!(matches!(decode(&bad), Err(KhqrError::Crc { .. })));
    }

    #[test]
    fn built_strings_round_trip_and_verify() {
        let qr = build(
            "shop@abaa",
            "Shop",
            Decimal::new(150, 2),
            Currency::Usd,
            "42",
        )
        .unwrap();
        let k = verify(&qr, Utc::now()).unwrap();
        assert_eq!(k.amount, Some(Decimal::new(15, 1)));
        assert_eq!(k.account_id(), Some("shop@abaa"));
        assert_eq!(
            k.additional_data.and_then(|a| a.bill_number).as_deref(),
            Some("42")
        );
    }

    #[test]
    fn an_expired_qr_is_told_apart_from_a_malformed_one() {
        let qr = build("shop@abaa", "Shop", Decimal::ONE, Currency::Usd, "1").unwrap();
        let later = Utc::now() + chrono::Duration::days(2);
        assert!(verify(&qr, later).unwrap_err().is_expired());
    }
}
