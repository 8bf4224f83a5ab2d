//! Opening a payment from `[merchant]`: the KHQR built once for `new` and
//! for the HTTP API (`POST /v1/payments`), with its md5, the amount as the
//! QR writes it, and the instant tag 99 and the row's `expires_at` share.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;

use crate::config::{ConfigError, Settings};
use crate::khqr::{self, KhqrError, KhqrRequest};
use crate::money::Currency;

/// What a payment is opened for.
#[derive(Debug, Clone)]
pub struct Order {
    /// The amount to pay (a KHQR without one is static: not tracked).
    pub amount: Decimal,
    /// USD or KHR.
    pub currency: Currency,
    /// Bill number (tag 62.01).
    pub bill: Option<String>,
    /// Purpose of transaction (tag 62.08).
    pub purpose: Option<String>,
    /// Lifetime of the QR and the row (`None`: `poller.payment_ttl`).
    pub ttl: Option<TimeDelta>,
}

/// The KHQR of an opened payment.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The KHQR string.
    pub qr: String,
    /// Its md5 (the row's key).
    pub md5: String,
    /// The amount as the QR writes it (the row's `amount`).
    pub amount: String,
    /// When the QR was made (tag 99), whole milliseconds.
    pub created_at: DateTime<Utc>,
    /// When the QR and the row expire, whole milliseconds.
    pub expires_at: DateTime<Utc>,
    /// The receiving account.
    pub account_id: String,
}

/// Why a payment cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `[merchant]` is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The encoder refuses a value; [`KhqrError::field`] names it.
    #[error(transparent)]
    Khqr(#[from] KhqrError),
    /// The lifetime cannot be added to now.
    #[error("the lifetime is too long")]
    TooLong,
}

/// The request `[merchant]` and `order` make, before encoding (for the
/// warnings of [`khqr::field_warnings`]).
pub fn request(settings: &Settings, order: &Order) -> Result<KhqrRequest, OpenError> {
    let mut req = settings.merchant.request()?;
    req.currency = order.currency;
    req.amount = Some(order.amount);
    req.additional_data.bill_number = order.bill.clone();
    req.additional_data.purpose = order.purpose.clone();
    Ok(req)
}

/// Builds the KHQR of `order` now.
pub fn build(settings: &Settings, order: &Order) -> Result<Opened, OpenError> {
    build_at(settings, order, Utc::now())
}

/// Builds the KHQR of `order` as made at `now` (tag 99). Two orders alike
/// made in the same millisecond would be the same QR, the same md5: a
/// caller that meets the md5 taken builds again a millisecond later.
pub fn build_at(
    settings: &Settings,
    order: &Order,
    now: DateTime<Utc>,
) -> Result<Opened, OpenError> {
    let mut req = request(settings, order)?;
    let ms = TimeDelta::milliseconds(1);
    let now = now.duration_trunc(ms).map_err(|_| OpenError::TooLong)?;
    let ttl = match order.ttl {
        Some(t) => t,
        None => TimeDelta::from_std(settings.poller.payment_ttl).map_err(|_| OpenError::TooLong)?,
    };
    let expires_at = now
        .checked_add_signed(ttl)
        .and_then(|t| t.duration_trunc(ms).ok())
        .ok_or(OpenError::TooLong)?;
    req.expires_at = Some(expires_at);
    let qr = khqr::encode(&req, now)?;
    let amount = khqr::format_amount(order.amount, order.currency)?;
    Ok(Opened {
        md5: khqr::md5_hex(&qr),
        qr,
        amount,
        created_at: now,
        expires_at,
        account_id: req.account.account_id().to_string(),
    })
}
