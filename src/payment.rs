//! The domain: a payment's status, its scheduling lane, its id, and what a
//! confirmation records. The store speaks only these types; the poller maps
//! Bakong's answers onto them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Currency;

/// A payment's status, as the `payments.status` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not yet final: the daemon keeps checking.
    Pending,
    /// Paid as expected.
    Paid,
    /// Paid, but the amount, currency or receiver differ.
    Mismatch,
    /// Expired after Bakong reported the transaction failed.
    Failed,
    /// Expired without a payment.
    Expired,
    /// Cancelled by the shop while pending.
    Cancelled,
    /// The expected money, found after the row became expired, failed or
    /// cancelled (the late watch).
    PaidLate,
}

impl Status {
    /// Every status, pending first.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Paid,
        Status::Mismatch,
        Status::Failed,
        Status::Expired,
        Status::Cancelled,
        Status::PaidLate,
    ];

    /// The final statuses still watched for late money (for
    /// `poller.late_watch`): the one move out of them is to `paid_late`
    /// or `mismatch`, once.
    pub const LATE_WATCHED: [Status; 3] = [Status::Expired, Status::Failed, Status::Cancelled];

    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Paid => "paid",
            Status::Mismatch => "mismatch",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::PaidLate => "paid_late",
        }
    }

    /// Whether the row is watched for late money in this status.
    pub fn late_watched(self) -> bool {
        Status::LATE_WATCHED.contains(&self)
    }

    /// Whether the status is final: written once, and never again except
    /// the late watch's one move from expired, failed or cancelled to
    /// paid_late or mismatch.
    pub fn is_final(self) -> bool {
        self != Status::Pending
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status text that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}: expected pending, paid, mismatch, failed, expired, cancelled or paid_late")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A final status: what a result write may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalStatus {
    /// Paid as expected.
    Paid,
    /// Paid differently than expected.
    Mismatch,
    /// Failed, and the payment's deadline passed.
    Failed,
    /// Not paid by the deadline.
    Expired,
    /// Paid as expected after the row became expired, failed or cancelled.
    PaidLate,
}

impl FinalStatus {
    /// As a [`Status`].
    pub fn status(self) -> Status {
        match self {
            FinalStatus::Paid => Status::Paid,
            FinalStatus::Mismatch => Status::Mismatch,
            FinalStatus::Failed => Status::Failed,
            FinalStatus::Expired => Status::Expired,
            FinalStatus::PaidLate => Status::PaidLate,
        }
    }

    /// The column's text.
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }
}

/// The scheduling lane: fresh payments (a customer may be at the counter)
/// are claimed before older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Lane {
    /// New and fresh payments (`lane = 0`).
    Fresh,
    /// Payments older than `poller.fresh_period` (`lane = 1`).
    Old,
}

impl Lane {
    /// The column's value.
    pub fn as_i64(self) -> i64 {
        match self {
            Lane::Fresh => 0,
            Lane::Old => 1,
        }
    }
}

/// A payment's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(pub i64);

impl From<i64> for PaymentId {
    fn from(id: i64) -> Self {
        PaymentId(id)
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a final write records about the transaction Bakong reported (for
/// `paid` and `mismatch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// The transaction hash, 64 lowercase hex.
    pub hash: String,
    /// The payer's account, when Bakong reports one.
    pub from_account_id: Option<String>,
    /// The receiver's account.
    pub to_account_id: String,
    /// The amount paid.
    pub paid_amount: Decimal,
    /// The currency paid.
    pub paid_currency: Currency,
    /// Free text, often absent.
    pub description: Option<String>,
    /// When the payer paid, if reported.
    pub paid_at: Option<DateTime<Utc>>,
}

/// The longest `order_id` the table takes, in characters.
pub const ORDER_ID_MAX: usize = 255;

/// The largest `metadata` the table takes, in bytes of its JSON text.
pub const METADATA_MAX: usize = 4096;

/// A value of the shop's columns the table would refuse; says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadField(pub String);

/// Checks an order reference: 1 to 255 characters, no control characters
/// (it is shown in logs and pages).
pub fn check_order_id(s: &str) -> Result<(), BadField> {
    let n = s.chars().count();
    if n == 0 || n > ORDER_ID_MAX {
        return Err(BadField(format!(
            "an order id has 1 to {ORDER_ID_MAX} characters, got {n}"
        )));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(BadField(format!(
            "an order id has no control characters, got {c:?}"
        )));
    }
    Ok(())
}

/// Checks metadata and returns it as compact JSON text: a JSON object of
/// at most 4,096 bytes once compacted.
pub fn metadata_text(s: &str) -> Result<String, BadField> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| BadField(format!("not JSON: {e}")))?;
    metadata_of(&v)
}

/// Checks a metadata value and returns it as compact JSON text.
pub fn metadata_of(v: &serde_json::Value) -> Result<String, BadField> {
    if !v.is_object() {
        return Err(BadField(
            "metadata is a JSON object ({\"key\": value, ...})".into(),
        ));
    }
    let text = v.to_string();
    if text.len() > METADATA_MAX {
        return Err(BadField(format!(
            "metadata is at most {METADATA_MAX} bytes of JSON, got {}",
            text.len()
        )));
    }
    Ok(text)
}

/// Whether `s` has a public id's shape: 32 lowercase hex, an md5's.
pub fn is_public_id(s: &str) -> bool {
    crate::khqr::is_md5(s)
}

/// A new public id: 128 random bits as 32 lowercase hex (the table's own
/// default makes the same for rows an application inserts).
pub fn new_public_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_fields_are_checked_as_the_table_checks_them() {
        assert!(check_order_id("order-1042").is_ok());
        assert!(check_order_id("").is_err());
        assert!(check_order_id(&"x".repeat(256)).is_err());
        assert!(check_order_id("a\nb").is_err());
        assert_eq!(
            metadata_text(r#"{ "a" : 1 }"#).expect("object"),
            r#"{"a":1}"#
        );
        assert!(metadata_text("[1]").is_err());
        assert!(metadata_text("{").is_err());
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(4100));
        assert!(metadata_text(&big).expect_err("too big").0.contains("4096"));
        let id = new_public_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(id, new_public_id());
    }

    #[test]
    fn statuses_round_trip_through_their_column_text() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert!("PAID".parse::<Status>().is_err());
        assert!(!Status::Pending.is_final());
        assert!(FinalStatus::Expired.status().is_final());
    }
}
