//! What an answer means for a payment: final status, check again when, or
//! ask once more with a single lookup. Every rule about reading an answer
//! lives here: the `paid` comparison, "final only after the deadline",
//! the deadline's single lookup that tells failed from expired (the md5
//! list has no FAILED), and static QRs (checked like "not found").

use std::time::Duration;

use chrono::DateTime;
use rust_decimal::Decimal;

use crate::bakong::{Error, Transaction};
use crate::config::PollerSettings;
use crate::khqr::is_md5;
use crate::money::{check_precision, parse_amount, Currency};
use crate::payment::{Confirmation, FinalStatus, Lane, PaymentId};
use crate::store::{Claimed, Held, Write};

use super::schedule;

/// The bookkeeping answer kind of a static QR.
pub const STATIC_QR: &str = "static_qr";

/// A claimed row whose values cannot be used; the message names the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRow(pub String);

/// A claimed row whose values passed validation.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Row id.
    pub id: PaymentId,
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
    /// Bakong said this md5 is a static QR (no amount: never confirmable).
    pub static_qr: bool,
    /// The row as claimed: every write for this payment is guarded by it.
    pub held: Held,
}

impl Payment {
    /// Validates a claimed row; the error names the column.
    pub fn from_claimed(c: &Claimed, grace: Duration) -> Result<Self, BadRow> {
        if !is_md5(&c.md5) {
            return Err(BadRow(format!(
                "md5 {:?} is not 32 lowercase hex characters",
                c.md5
            )));
        }
        // SQLite has no md5() to refuse this at INSERT (PostgreSQL does):
        // a QR whose md5 is another than the row's would never be seen paid.
        if let Some(qr) = &c.qr {
            let of_qr = crate::khqr::md5_hex(qr);
            if of_qr != c.md5 {
                return Err(BadRow(format!(
                    "qr: its md5 is {of_qr}, not the row's md5 {}; store the md5 of the QR shown to the customer",
                    c.md5
                )));
            }
        }
        let amount = parse_amount(&c.amount).map_err(|e| BadRow(format!("amount: {e}")))?;
        let currency = c
            .currency
            .parse::<Currency>()
            .map_err(|e| BadRow(format!("currency: {e}")))?;
        check_precision(amount, currency).map_err(|e| BadRow(format!("amount: {e}")))?;
        let created_ms = c
            .created_ms
            .ok_or_else(|| BadRow("created_at is not a readable UTC time".into()))?;
        let expires_ms = c
            .expires_ms
            .ok_or_else(|| BadRow("expires_at is not a readable UTC time".into()))?;
        Ok(Payment {
            id: c.id,
            lease_id: c.lease_id,
            md5: c.md5.clone(),
            amount,
            currency,
            created_ms,
            deadline_ms: expires_ms.saturating_add(schedule::millis(grace)),
            errors: c.errors,
            static_qr: c.last_answer.as_deref() == Some(STATIC_QR),
            held: c.held(),
        })
    }
}

/// How an answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `check_transaction_by_md5`.
    Single,
    /// An item of `check_transaction_by_md5_list`, which has no FAILED.
    List,
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
    /// Worth one warning now (first sight of a static QR).
    pub warn: bool,
}

/// What to do with an answer.
#[derive(Debug)]
// One per answer, consumed at once: boxing the common variant would buy
// nothing but an allocation per check.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Write this.
    Record(Verdict),
    /// Ask once more with a single lookup, then classify that answer (a
    /// list's "not found" at the deadline: only a single lookup tells a
    /// failed transaction from none).
    AskSingly,
}

/// Maps a transaction Bakong reported onto what the store records.
pub fn confirmation(tx: &Transaction) -> Confirmation {
    Confirmation {
        hash: tx.hash.clone(),
        from_account_id: tx.from_account_id.clone(),
        to_account_id: tx.to_account_id.clone(),
        paid_amount: tx.amount,
        paid_currency: tx.currency,
        description: tx.description.clone(),
        paid_at: tx
            .created_date_ms
            .and_then(DateTime::<chrono::Utc>::from_timestamp_millis),
    }
}

/// Compares a found transaction with what the merchant expects. Values
/// compared exactly are quoted in the reason, so a stray space shows.
pub fn compare(p: &Payment, tx: &Transaction, account_id: Option<&str>) -> (FinalStatus, String) {
    let mut diffs = Vec::new();
    // An amount more precise than its currency allows is never a payment
    // of the expected amount, whatever it compares equal to.
    if let Err(e) = check_precision(tx.amount, tx.currency) {
        diffs.push(format!("amount {e}"));
    } else if tx.amount != p.amount {
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
                "receiver {:?} != configured account {acc:?}",
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

fn lane(p: &Payment, now_ms: i64, cfg: &PollerSettings) -> Lane {
    if now_ms.saturating_sub(p.created_ms) >= schedule::millis(cfg.fresh_period) {
        Lane::Old
    } else {
        Lane::Fresh
    }
}

fn final_write(p: &Payment, status: FinalStatus, answer: &'static str, reason: String) -> Verdict {
    Verdict {
        write: Write::Final {
            row: p.held.clone(),
            status,
            confirmation: None,
            answer,
        },
        reason,
        payment: Some(p.clone()),
        warn: false,
    }
}

/// Whether a payment can be settled without a request: never. A static
/// QR answer used to park the payment until its deadline and expire it
/// unchecked; it is now checked like a "not found" (money for that md5
/// may still arrive, and a payment expires only at a check made after its
/// deadline). Kept so the check loop's call stays valid; always `None`.
pub fn without_asking(_p: &Payment, _now_ms: i64, _cfg: &PollerSettings) -> Option<Verdict> {
    None
}

/// Classifies the answer to a check sent at `checked_ms` (unix ms).
pub fn classify(
    p: &Payment,
    answer: Result<Transaction, Error>,
    via: Via,
    checked_ms: i64,
    account_id: Option<&str>,
    cfg: &PollerSettings,
) -> Decision {
    let past_deadline = checked_ms >= p.deadline_ms;
    let reschedule = |answer: &'static str, error: Option<String>, transient: bool| {
        let delay = if transient {
            schedule::error_backoff(p.errors + 1, cfg)
        } else {
            match via {
                Via::List => {
                    schedule::next_bulk_interval(checked_ms.saturating_sub(p.created_ms), cfg)
                }
                Via::Single => {
                    schedule::next_interval(checked_ms.saturating_sub(p.created_ms), cfg)
                }
            }
        };
        Write::Reschedule {
            row: p.held.clone(),
            next_check_at: schedule::cap_at_deadline(checked_ms, delay, p.deadline_ms),
            answer,
            error,
            transient,
            lane: lane(p, checked_ms, cfg),
        }
    };
    let verdict = |write: Write, reason: String| {
        Decision::Record(Verdict {
            write,
            reason,
            payment: Some(p.clone()),
            warn: false,
        })
    };
    match answer {
        Ok(tx) => {
            let (status, reason) = compare(p, &tx, account_id);
            Decision::Record(Verdict {
                write: Write::Final {
                    row: p.held.clone(),
                    status,
                    confirmation: Some(Box::new(confirmation(&tx))),
                    answer: "found",
                },
                reason,
                payment: Some(p.clone()),
                warn: false,
            })
        }
        Err(Error::NotFound { .. }) if past_deadline && via == Via::List => Decision::AskSingly,
        Err(Error::NotFound { .. }) if past_deadline => Decision::Record(final_write(
            p,
            FinalStatus::Expired,
            "not_found",
            "expired: not found after expires_at + expiry_grace".into(),
        )),
        Err(Error::TransactionFailed { .. }) if past_deadline => Decision::Record(final_write(
            p,
            FinalStatus::Failed,
            "failed",
            "failed: Bakong reports the transaction failed, and the payment expired".into(),
        )),
        // Bakong calls the md5 a static QR: no md5 lookup confirms a QR
        // without an amount, but the rule is "not found"'s: checked again
        // on the same schedule (money for the md5 may still show up), and
        // expired only at a check made after the deadline. Both the list
        // and a single lookup say so, so no single lookup is needed.
        Err(Error::StaticQr { .. }) if past_deadline => {
            let mut v = final_write(
                p,
                FinalStatus::Expired,
                STATIC_QR,
                "expired: static QR (no amount), which cannot be confirmed by md5".into(),
            );
            v.warn = !p.static_qr;
            Decision::Record(v)
        }
        Err(Error::StaticQr { .. }) => Decision::Record(Verdict {
            write: reschedule(STATIC_QR, None, false),
            reason: "static QR: checked again until its deadline".into(),
            payment: Some(p.clone()),
            // Worth one warning, at first sight.
            warn: !p.static_qr,
        }),
        Err(Error::NotFound { .. }) => {
            verdict(reschedule("not_found", None, false), "not found yet".into())
        }
        Err(Error::TransactionFailed { .. }) => verdict(
            reschedule("failed", None, false),
            "transaction failed (the customer may retry)".into(),
        ),
        Err(e) => {
            let reason = e.to_string();
            verdict(reschedule(e.kind(), Some(reason.clone()), true), reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> Payment {
        Payment {
            id: PaymentId(1),
            lease_id: 7,
            md5: "b1c250304b8594e4c6b53dd44791b57a".into(),
            amount: Decimal::new(150, 2),
            currency: Currency::Usd,
            created_ms: 0,
            deadline_ms: 10_000,
            errors: 0,
            static_qr: false,
            held: Held {
                id: PaymentId(1),
                lease_id: 7,
                md5: "b1c250304b8594e4c6b53dd44791b57a".into(),
                amount: "1.50".into(),
                currency: "USD".into(),
                from: crate::payment::Status::Pending,
            },
        }
    }

    fn record(d: Decision) -> Write {
        match d {
            Decision::Record(v) => v.write,
            Decision::AskSingly => panic!("expected a write, got AskSingly"),
        }
    }

    fn tx(amount: Decimal, currency: Currency, to: &str) -> Transaction {
        Transaction {
            hash: "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9".into(),
            from_account_id: Some("payer@bank".into()),
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
        let v = record(classify(
            &payment(),
            Err(Error::RateLimited { retry_after: None }),
            Via::Single,
            50_000,
            None,
            &cfg,
        ));
        assert!(matches!(
            v,
            Write::Reschedule {
                transient: true,
                ..
            }
        ));
        let v = record(classify(
            &payment(),
            Err(Error::Unauthorized {
                detail: String::new(),
            }),
            Via::Single,
            50_000,
            None,
            &cfg,
        ));
        assert!(matches!(
            v,
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
            record(classify(&payment(), nf(), Via::Single, 9_999, None, &cfg)),
            Write::Reschedule { .. }
        ));
        assert!(matches!(
            record(classify(&payment(), nf(), Via::Single, 10_000, None, &cfg)),
            Write::Final {
                status: FinalStatus::Expired,
                ..
            }
        ));
        let failed = Err(Error::TransactionFailed {
            message: String::new(),
        });
        assert!(matches!(
            record(classify(
                &payment(),
                failed,
                Via::Single,
                10_000,
                None,
                &cfg
            )),
            Write::Final {
                status: FinalStatus::Failed,
                ..
            }
        ));
    }

    #[test]
    fn a_list_not_found_at_the_deadline_asks_singly_and_earlier_waits() {
        let cfg = PollerSettings::default();
        let nf = || {
            Err(Error::NotFound {
                message: String::new(),
            })
        };
        assert!(matches!(
            classify(&payment(), nf(), Via::List, 10_000, None, &cfg),
            Decision::AskSingly
        ));
        assert!(matches!(
            record(classify(&payment(), nf(), Via::List, 9_000, None, &cfg)),
            Write::Reschedule { .. }
        ));
    }

    #[test]
    fn an_amount_more_precise_than_its_currency_is_a_mismatch() {
        let mut p = payment();
        p.amount = Decimal::new(5, 0);
        for (amount, currency) in [
            (Decimal::new(5001, 3), Currency::Usd),
            (Decimal::new(49_999_999_999_999_999, 16), Currency::Usd),
            (Decimal::new(55, 1), Currency::Khr),
        ] {
            let (status, reason) = compare(&p, &tx(amount, currency, "me@b"), None);
            assert_eq!(status, FinalStatus::Mismatch, "{amount} {currency}");
            assert!(reason.contains("amount"), "{reason}");
        }
        // Trailing zeros are not decimals.
        let (status, _) = compare(&p, &tx(Decimal::new(5000, 3), Currency::Usd, "me@b"), None);
        assert_eq!(status, FinalStatus::Paid);
    }

    #[test]
    fn a_static_qr_answer_is_checked_again_like_not_found_and_expires_only_at_a_check_after_the_deadline(
    ) {
        let cfg = PollerSettings::default();
        let sq = || {
            Err(Error::StaticQr {
                message: String::new(),
            })
        };
        for via in [Via::List, Via::Single] {
            // Before the deadline: checked again on the usual schedule, not
            // parked until the deadline.
            match classify(&payment(), sq(), via, 1_000, None, &cfg) {
                Decision::Record(v) => {
                    assert!(v.warn, "first sight warns");
                    match v.write {
                        Write::Reschedule {
                            next_check_at,
                            answer: STATIC_QR,
                            transient: false,
                            ..
                        } => assert!(next_check_at < 10_000, "{next_check_at}"),
                        other => panic!("{other:?}"),
                    }
                }
                other => panic!("{other:?}"),
            }
            // Seen before: no second warning.
            let mut seen = payment();
            seen.static_qr = true;
            match classify(&seen, sq(), via, 2_000, None, &cfg) {
                Decision::Record(v) => assert!(!v.warn),
                other => panic!("{other:?}"),
            }
            // At a check after the deadline: expired, with that reason.
            match classify(&seen, sq(), via, 10_000, None, &cfg) {
                Decision::Record(v) => {
                    assert!(v.reason.contains("static QR"), "{}", v.reason);
                    assert!(matches!(
                        v.write,
                        Write::Final {
                            status: FinalStatus::Expired,
                            answer: STATIC_QR,
                            ..
                        }
                    ));
                }
                other => panic!("{other:?}"),
            }
        }
        // Money found later is paid.
        let mut seen = payment();
        seen.static_qr = true;
        assert!(matches!(
            record(classify(
                &seen,
                Ok(tx(Decimal::new(150, 2), Currency::Usd, "me@b")),
                Via::Single,
                5_000,
                None,
                &cfg
            )),
            Write::Final {
                status: FinalStatus::Paid,
                ..
            }
        ));
        // Nothing settles a payment without a check.
        assert!(without_asking(&seen, 10_000, &cfg).is_none());
        assert!(without_asking(&seen, 1_000, &cfg).is_none());
    }

    #[test]
    fn the_mismatch_reason_quotes_exactly_compared_values() {
        let (_, reason) = compare(
            &payment(),
            &tx(Decimal::new(15, 1), Currency::Usd, "shop@aclb"),
            Some("shop@aclb "),
        );
        assert!(reason.contains("\"shop@aclb\""), "{reason}");
        assert!(reason.contains("\"shop@aclb \""), "{reason}");
    }
}
