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
#[serde(rename_all = "lowercase")]
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
}

impl Status {
    /// Every status, pending first.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Paid,
        Status::Mismatch,
        Status::Failed,
        Status::Expired,
    ];

    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Paid => "paid",
            Status::Mismatch => "mismatch",
            Status::Failed => "failed",
            Status::Expired => "expired",
        }
    }

    /// Whether the status is final (written once, never again).
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
#[error("unknown status {0:?}: expected pending, paid, mismatch, failed or expired")]
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
}

impl FinalStatus {
    /// As a [`Status`].
    pub fn status(self) -> Status {
        match self {
            FinalStatus::Paid => Status::Paid,
            FinalStatus::Mismatch => Status::Mismatch,
            FinalStatus::Failed => Status::Failed,
            FinalStatus::Expired => Status::Expired,
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

#[cfg(test)]
mod tests {
    use super::*;

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
