//! Request and answer types of the Bakong Open API.
//!
//! Answers are read leniently where the live service varies (timestamps as
//! integers or floats, null or absent fields, extra fields) and strictly
//! where it matters (amounts as exact decimals, currencies, hashes).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::{amount_from_json, Currency};

/// The envelope every endpoint answers with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// 0 success, 1 fail.
    pub response_code: i64,
    /// Human text.
    #[serde(default)]
    pub response_message: Option<String>,
    /// Error code when `response_code` is 1.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// The payload.
    #[serde(default)]
    pub data: Value,
}

/// A transaction as a successful check reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Transaction hash, 64 hex characters.
    pub hash: String,
    /// Payer account.
    pub from_account_id: String,
    /// Receiver account.
    pub to_account_id: String,
    /// Currency.
    pub currency: Currency,
    /// Amount in major units, exact.
    pub amount: Decimal,
    /// Free text, often null.
    pub description: Option<String>,
    /// When the payer sent it (ms since the epoch), if reported.
    pub created_date_ms: Option<i64>,
    /// When Bakong acknowledged it (ms since the epoch), if reported.
    pub acknowledged_date_ms: Option<i64>,
    /// Merchant reference, if reported.
    pub external_ref: Option<String>,
    /// Instruction reference, if reported.
    pub instruction_ref: Option<String>,
    /// Tracking status, if reported.
    pub tracking_status: Option<String>,
    /// Receiver bank, if reported.
    pub receiver_bank: Option<String>,
    /// Receiver bank account, if reported.
    pub receiver_bank_account: Option<String>,
}

fn opt_string(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_millis(v: &Value, key: &str) -> Result<Option<i64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.round() as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("{key} {n} is not a timestamp")),
        Some(Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Some(f.round() as i64))
            .ok_or_else(|| format!("{key} {s:?} is not a timestamp")),
        Some(other) => Err(format!("{key} {other} is not a timestamp")),
    }
}

impl Transaction {
    /// Reads a transaction from the `data` of a check answer.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        if !v.is_object() {
            return Err(format!("data is {v}, expected a transaction object"));
        }
        let req = |key: &str| opt_string(v, key).ok_or_else(|| format!("{key} is missing"));
        let hash = req("hash")?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("hash {hash:?} is not 64 hex characters"));
        }
        let currency_text = req("currency")?;
        let currency = currency_text
            .parse::<Currency>()
            .map_err(|e| format!("currency: {e}"))?;
        let amount = v
            .get("amount")
            .and_then(amount_from_json)
            .filter(|a| *a > Decimal::ZERO)
            .ok_or_else(|| format!("amount {:?} is not a positive decimal", v.get("amount")))?;
        Ok(Transaction {
            hash: hash.to_ascii_lowercase(),
            from_account_id: req("fromAccountId")?,
            to_account_id: req("toAccountId")?,
            currency,
            amount,
            description: opt_string(v, "description"),
            created_date_ms: opt_millis(v, "createdDateMs")?,
            acknowledged_date_ms: opt_millis(v, "acknowledgedDateMs")?,
            external_ref: opt_string(v, "externalRef"),
            instruction_ref: opt_string(v, "instructionRef"),
            tracking_status: opt_string(v, "trackingStatus"),
            receiver_bank: opt_string(v, "receiverBank"),
            receiver_bank_account: opt_string(v, "receiverBankAccount"),
        })
    }
}

/// The answer for one md5 or hash of a list check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ListStatus {
    /// Found.
    Success {
        /// The transaction.
        transaction: Box<Transaction>,
    },
    /// Not found (yet).
    NotFound,
    /// The transaction failed.
    Failed,
    /// A static QR, which cannot be tracked.
    StaticQr,
}

/// `request_token` body.
#[derive(Debug, Clone, Serialize)]
pub struct RequestTokenBody {
    /// Email, at most 30 characters.
    pub email: String,
    /// Organization, 1..100 characters.
    pub organization: String,
    /// Project, 1..100 characters.
    pub project: String,
}

/// `generate_deeplink_by_qr` source info.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    /// Your app's icon URL.
    pub app_icon_url: String,
    /// Your app's name.
    pub app_name: String,
    /// Deeplink to open your app after payment.
    pub app_deep_link_callback: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_read_as_integers_or_floats() {
        let v = json!({"hash": "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9",
            "fromAccountId": "a@b", "toAccountId": "c@d", "currency": "USD", "amount": 1.0,
            "createdDateMs": 1586852120700.0, "acknowledgedDateMs": 1586852120701_i64, "extra": [1]});
        let t = Transaction::from_json(&v).expect("valid transaction");
        assert_eq!(t.created_date_ms, Some(1586852120700));
        assert_eq!(t.acknowledged_date_ms, Some(1586852120701));
        assert_eq!(t.amount, Decimal::ONE);
        assert_eq!(t.description, None);
    }

    #[test]
    fn a_transaction_without_a_valid_hash_is_refused() {
        let v = json!({"hash": "zz", "fromAccountId": "a@b", "toAccountId": "c@d", "currency": "USD", "amount": 1});
        let err = Transaction::from_json(&v).expect_err("refused");
        assert!(err.contains("hash"), "{err}");
    }
}
