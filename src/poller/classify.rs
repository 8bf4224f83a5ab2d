//! What an answer means for a payment: final status, or check again when.

use std::time::Duration;

use rust_decimal::Decimal;

use crate::bakong::{Error, Transaction};
use crate::config::PollerSettings;
use crate::khqr::is_md5;
use crate::money::{check_precision, parse_amount, Currency};
use crate::store::{Claimed, FinalStatus, Write};

use super::schedule;

/// A claimed row whose values passed validation.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Row id.
    pub id: i64,
    /// The claim.
    pub lease_id: i64,
    /// md5, 32 lowercase hex.
    pub md5: String,
    /// Expected amount.
    pub amount: Decimal,
    /// Expected currency.
    pub currency: Currency,
    /// created_at, unix ms.
    pub created_ms: i64,
    /// expires_at + expiry_grace, unix ms: after this a "no" is final.
    pub deadline_ms: i64,
    /// Consecutive transient errors so far.
    pub errors: i64,
}

impl Payment {
    /// Validates a claimed row; the error names the column.
    pub fn from_claimed(c: &Claimed, grace: Duration) -> Result<Self, String> {
        if !is_md5(&c.md5) {
            return Err(format!(
                "md5 {:?} is not 32 lowercase hex characters",
                c.md5
            ));
        }
        let amount = parse_amount(&c.amount).map_err(|e| format!("amount: {e}"))?;
        let currency = c
            .currency
            .parse::<Currency>()
            .map_err(|e| format!("currency: {e}"))?;
        check_precision(amount, currency).map_err(|e| format!("amount: {e}"))?;
        let created_ms = c
            .created_ms
            .ok_or("created_at is not a readable UTC time")?;
        let expires_ms = c
            .expires_ms
            .ok_or("expires_at is not a readable UTC time")?;
        Ok(Payment {
            id: c.id,
            lease_id: c.lease_id,
            md5: c.md5.clone(),
            amount,
            currency,
            created_ms,
            deadline_ms: expires_ms.saturating_add(grace.as_millis() as i64),
            errors: c.errors,
        })
    }
}

/// The verdict on one check.
#[derive(Debug)]
pub struct Verdict {
    /// The write to make.
    pub write: Write,
    /// Why, for the log: `paid`, `mismatch: amount 1.00 != 1.50`, ...
    pub reason: String,
    /// The payment checked (None for a row that failed validation).
    pub payment: Option<Payment>,
}

/// Compares a found transaction with what the merchant expects.
pub fn compare(p: &Payment, tx: &Transaction, account_id: Option<&str>) -> (FinalStatus, String) {
    let mut diffs = Vec::new();
    if tx.amount != p.amount {
        diffs.push(format!("amount {} != expected {}", tx.amount, p.amount));
    }
    if tx.currency != p.currency {
        diffs.push(format!(
            "currency {} != expected {}",
            tx.currency, p.currency
        ));
    }
    if let Some(acc) = account_id {
        if tx.to_account_id != acc {
            diffs.push(format!(
                "receiver {} != bakong.account_id {acc}",
                tx.to_account_id
            ));
        }
    }
    if diffs.is_empty() {
        (FinalStatus::Paid, "paid".into())
    } else {
        (
            FinalStatus::Mismatch,
            format!("mismatch: {}", diffs.join(", ")),
        )
    }
}

/// Classifies the answer to a check sent at `checked_ms` (unix ms).
pub fn classify(
    p: &Payment,
    answer: Result<Transaction, Error>,
    checked_ms: i64,
    account_id: Option<&str>,
    cfg: &PollerSettings,
) -> Verdict {
    let past_deadline = checked_ms >= p.deadline_ms;
    let reschedule = |answer: &'static str, error: Option<String>, transient: bool| {
        let delay = if transient {
            schedule::error_backoff(p.errors + 1, cfg)
        } else {
            schedule::next_interval(checked_ms - p.created_ms, cfg)
        };
        Write::Reschedule {
            id: p.id,
            lease_id: p.lease_id,
            next_check_at: schedule::cap_at_deadline(checked_ms, delay, p.deadline_ms),
            answer,
            error,
            transient,
            lane: i64::from(checked_ms - p.created_ms >= cfg.fresh_period.as_millis() as i64),
        }
    };
    match answer {
        Ok(tx) => {
            let (status, reason) = compare(p, &tx, account_id);
            Verdict {
                write: Write::Final {
                    id: p.id,
                    status,
                    tx: Some(Box::new(tx)),
                },
                reason,
                payment: Some(p.clone()),
            }
        }
        Err(Error::NotFound { .. } | Error::StaticQr { .. }) if past_deadline => Verdict {
            write: Write::Final {
                id: p.id,
                status: FinalStatus::Expired,
                tx: None,
            },
            reason: "expired: not found after expires_at + expiry_grace".into(),
            payment: Some(p.clone()),
        },
        Err(Error::TransactionFailed { .. }) if past_deadline => Verdict {
            write: Write::Final {
                id: p.id,
                status: FinalStatus::Failed,
                tx: None,
            },
            reason: "failed: Bakong reports the transaction failed, and the payment expired".into(),
            payment: Some(p.clone()),
        },
        Err(Error::StaticQr { message }) => Verdict {
            write: reschedule("static_qr", Some(message), false),
            reason: "Bakong says this md5 is a static QR, which cannot be tracked".into(),
            payment: Some(p.clone()),
        },
        Err(Error::NotFound { .. }) => Verdict {
            write: reschedule("not_found", None, false),
            reason: "not found yet".into(),
            payment: Some(p.clone()),
        },
        Err(Error::TransactionFailed { .. }) => Verdict {
            write: reschedule("failed", None, false),
            reason: "transaction failed (the customer may retry)".into(),
            payment: Some(p.clone()),
        },
        Err(e) => {
            let reason = e.to_string();
            Verdict {
                write: reschedule(e.kind(), Some(reason.clone()), true),
                reason,
                payment: Some(p.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> Payment {
        Payment {
            id: 1,
            lease_id: 7,
            md5: "b1c250304b8594e4c6b53dd44791b57a".into(),
            amount: Decimal::new(150, 2),
            currency: Currency::Usd,
            created_ms: 0,
            deadline_ms: 10_000,
            errors: 0,
        }
    }

    fn tx(amount: Decimal, currency: Currency, to: &str) -> Transaction {
        Transaction {
            hash: "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9".into(),
            from_account_id: "payer@bank".into(),
            to_account_id: to.into(),
            currency,
            amount,
            description: None,
            created_date_ms: None,
            acknowledged_date_ms: None,
            external_ref: None,
            instruction_ref: None,
            tracking_status: None,
            receiver_bank: None,
            receiver_bank_account: None,
        }
    }

    #[test]
    fn equal_decimals_are_paid_and_any_difference_is_a_mismatch() {
        let p = payment();
        assert_eq!(
            compare(
                &p,
                &tx(Decimal::new(15, 1), Currency::Usd, "me@b"),
                Some("me@b")
            )
            .0,
            FinalStatus::Paid
        );
        assert_eq!(
            compare(&p, &tx(Decimal::new(151, 2), Currency::Usd, "me@b"), None).0,
            FinalStatus::Mismatch
        );
        assert_eq!(
            compare(&p, &tx(Decimal::new(15, 1), Currency::Khr, "me@b"), None).0,
            FinalStatus::Mismatch
        );
        assert_eq!(
            compare(
                &p,
                &tx(Decimal::new(15, 1), Currency::Usd, "x@b"),
                Some("me@b")
            )
            .0,
            FinalStatus::Mismatch
        );
    }

    #[test]
    fn an_error_never_finalizes_even_past_the_deadline() {
        let cfg = PollerSettings::default();
        let v = classify(
            &payment(),
            Err(Error::RateLimited { retry_after: None }),
            50_000,
            None,
            &cfg,
        );
        assert!(matches!(
            v.write,
            Write::Reschedule {
                transient: true,
                ..
            }
        ));
        let v = classify(
            &payment(),
            Err(Error::Unauthorized {
                detail: String::new(),
            }),
            50_000,
            None,
            &cfg,
        );
        assert!(matches!(
            v.write,
            Write::Reschedule {
                transient: true,
                ..
            }
        ));
    }

    #[test]
    fn not_found_expires_only_after_the_deadline() {
        let cfg = PollerSettings::default();
        let nf = || {
            Err(Error::NotFound {
                message: String::new(),
            })
        };
        assert!(matches!(
            classify(&payment(), nf(), 9_999, None, &cfg).write,
            Write::Reschedule { .. }
        ));
        assert!(matches!(
            classify(&payment(), nf(), 10_000, None, &cfg).write,
            Write::Final {
                status: FinalStatus::Expired,
                ..
            }
        ));
        let failed = Err(Error::TransactionFailed {
            message: String::new(),
        });
        assert!(matches!(
            classify(&payment(), failed, 10_000, None, &cfg).write,
            Write::Final {
                status: FinalStatus::Failed,
                ..
            }
        ));
    }
}
