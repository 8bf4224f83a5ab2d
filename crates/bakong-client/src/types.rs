//! Request and answer types of the Bakong Open API.
//!
//! Answers are read by serde derives, leniently where the live service
//! varies (timestamps as integers, floats or strings; null or absent
//! fields; extra fields) and strictly where it matters (amounts as exact
//! decimals, currencies, hashes). A list answer is read item by item: one
//! unreadable item is an error for its own md5 only.
//!
//! A value neither database can store (a NUL in a string, a time outside
//! years 1970..=9999) is an unreadable value where it enters: in a field
//! the `paid` rule needs (hash, receiver, amount, currency) it makes the
//! item unreadable; in an informative field (payer, description, dates,
//! references) it reads as absent, as a null would. Nothing is stored
//! altered, and one odd answer never reaches the database to sink a
//! write.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use bakong_khqr::money::{amount_from_raw_json, Currency};

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
    /// The payload, for reading fields other than amounts (its numbers
    /// went through f64).
    #[serde(default)]
    pub data: Value,
    /// The payload's JSON text as it arrived, for what must be read
    /// exactly (amounts). `None` when the envelope was not read from text.
    #[serde(skip)]
    pub raw_data: Option<Box<RawValue>>,
}

/// The envelope as it arrives, its payload kept as text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEnvelope {
    response_code: i64,
    #[serde(default)]
    response_message: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

impl Envelope {
    /// Reads an answer's body, keeping the payload's text for exact
    /// reading ([`Envelope::raw_data`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        let w: WireEnvelope = serde_json::from_slice(body)?;
        // A payload whose numbers a float cannot hold (1e400) is still
        // readable through `raw_data`.
        let data = w
            .data
            .as_deref()
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or(Value::Null);
        Ok(Envelope {
            response_code: w.response_code,
            response_message: w.response_message,
            error_code: w.error_code,
            data,
            raw_data: w.data,
        })
    }

    /// The payload's JSON text as it arrived (`null` when absent); for an
    /// envelope built in code, the text of `data`.
    pub fn data_text(&self) -> String {
        match &self.raw_data {
            Some(r) => r.get().to_string(),
            None => self.data.to_string(),
        }
    }
}

/// A transaction as a successful check reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Transaction hash, 64 lowercase hex characters.
    pub hash: String,
    /// Payer account; the live service sometimes sends null.
    pub from_account_id: Option<String>,
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

/// A text field as read from an answer, before the item's rules apply.
#[derive(Debug, Default)]
enum Text {
    /// Null or absent.
    #[default]
    Absent,
    /// A string (or a number, as its text) both databases can store.
    Sound(String),
    /// Present but unusable; why, after the field's name.
    Unreadable(String),
}

impl Text {
    /// A field the item cannot do without: absent or unreadable is an
    /// error naming the field.
    fn required(self, field: &str) -> Result<String, AnswerError> {
        match self {
            Text::Sound(s) => Ok(s),
            Text::Absent => Err(format!("{field} is missing").into()),
            Text::Unreadable(why) => Err(format!("{field} {why}").into()),
        }
    }

    /// An informative field: unreadable reads as absent, as a null would
    /// (never a mangled value).
    fn optional(self) -> Option<String> {
        match self {
            Text::Sound(s) => Some(s),
            Text::Absent | Text::Unreadable(_) => None,
        }
    }
}

/// A string field that may arrive as a string or a number. Null or absent
/// is [`Text::Absent`]; anything else (objects, booleans, an escape that
/// is no character such as a lone surrogate, a NUL, which PostgreSQL's
/// `text` and `jsonb` cannot hold) is [`Text::Unreadable`]: a value that
/// cannot be stored is never stored altered.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
    let Some(raw) = Option::<Box<RawValue>>::deserialize(d)? else {
        return Ok(Text::Absent);
    };
    Ok(match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => Text::Absent,
        Ok(Value::String(s)) if s.contains('\0') => {
            Text::Unreadable("contains a NUL character, which cannot be stored".into())
        }
        Ok(Value::String(s)) => Text::Sound(s),
        Ok(Value::Number(n)) => Text::Sound(n.to_string()),
        Ok(other) => Text::Unreadable(format!(
            "is {}, not text",
            super::error::excerpt(other.to_string().as_bytes())
        )),
        Err(e) => Text::Unreadable(format!("is not readable text: {e}")),
    })
}

/// The first and last instants accepted as a payment's time (ms since the
/// epoch): years 1970 to 9999. Both databases hold these (PostgreSQL's
/// `timestamptz` spans 4713 BC to 294276 AD, chrono about ±262,000 years);
/// anything outside is no time a payment was made.
const SANE_MILLIS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// A millisecond timestamp as an integer, a float (`1586852120700.0` in
/// NBC's samples) or a numeric string; anything else (null, absent, an
/// unreadable value, a time outside years 1970..=9999) is `None`: these
/// dates are informative, not part of the `paid` rule, so they never make a
/// transaction unreadable.
fn lenient_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    let from_f64 = |f: f64| (f.is_finite() && f.abs() < 9.0e15).then(|| f.round() as i64);
    Ok(match &v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
        Value::String(s) => s.trim().parse::<f64>().ok().and_then(from_f64),
        _ => None,
    }
    .filter(|ms| SANE_MILLIS.contains(ms)))
}

/// The wire shape of a transaction, before validation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTransaction {
    #[serde(default, deserialize_with = "lenient_text")]
    hash: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    from_account_id: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    to_account_id: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    currency: Text,
    /// As written: read exactly from this text, never through f64.
    #[serde(default)]
    amount: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "lenient_text")]
    description: Text,
    #[serde(default, deserialize_with = "lenient_millis")]
    created_date_ms: Option<i64>,
    #[serde(default, deserialize_with = "lenient_millis")]
    acknowledged_date_ms: Option<i64>,
    #[serde(default, deserialize_with = "lenient_text")]
    external_ref: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    instruction_ref: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    tracking_status: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    receiver_bank: Text,
    #[serde(default, deserialize_with = "lenient_text")]
    receiver_bank_account: Text,
}

/// Why an answer (or one item of a list answer) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnswerError(pub String);

impl From<String> for AnswerError {
    fn from(s: String) -> Self {
        AnswerError(s)
    }
}

impl From<&str> for AnswerError {
    fn from(s: &str) -> Self {
        AnswerError(s.to_string())
    }
}

impl Transaction {
    /// Reads a transaction from the `data` of a check answer. What the
    /// `paid` rule needs (hash, receiver, amount, currency) must be sound
    /// and storable (no NUL); the rest is read leniently: a null, unreadable
    /// or unstorable payer, description, reference or date is `None`.
    ///
    /// Built from a [`Value`], whose numbers went through f64: use
    /// [`Transaction::from_text`] on an answer's text.
    pub fn from_json(v: &Value) -> Result<Self, AnswerError> {
        Self::from_text(&v.to_string())
    }

    /// Reads a transaction from the JSON text of a check answer's `data`;
    /// the amount is read exactly from its text (a number or a string),
    /// and an amount that cannot be held exactly makes it unreadable.
    pub fn from_text(text: &str) -> Result<Self, AnswerError> {
        if !text.trim_start().starts_with('{') {
            return Err(format!(
                "data is {}, expected a transaction object",
                super::error::excerpt(text.as_bytes())
            )
            .into());
        }
        let w: WireTransaction =
            serde_json::from_str(text).map_err(|e| AnswerError(e.to_string()))?;
        let hash = w.hash.required("hash")?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("hash {hash:?} is not 64 hex characters").into());
        }
        let currency = w
            .currency
            .required("currency")?
            .parse::<Currency>()
            .map_err(|e| format!("currency: {e}"))?;
        let raw_amount = w.amount.as_deref().map(RawValue::get).unwrap_or("null");
        let amount = amount_from_raw_json(raw_amount)
            .filter(|a| *a > Decimal::ZERO)
            .ok_or_else(|| {
                format!(
                    "amount {} is not a positive decimal that can be read exactly",
                    super::error::excerpt(raw_amount.as_bytes())
                )
            })?;
        let to_account_id = match w.to_account_id {
            Text::Sound(s) if s.is_empty() => Text::Absent,
            other => other,
        }
        .required("toAccountId")?;
        Ok(Transaction {
            hash: hash.to_ascii_lowercase(),
            from_account_id: w.from_account_id.optional().filter(|s| !s.is_empty()),
            to_account_id,
            currency,
            amount,
            description: w.description.optional(),
            created_date_ms: w.created_date_ms,
            acknowledged_date_ms: w.acknowledged_date_ms,
            external_ref: w.external_ref.optional(),
            instruction_ref: w.instruction_ref.optional(),
            tracking_status: w.tracking_status.optional(),
            receiver_bank: w.receiver_bank.optional(),
            receiver_bank_account: w.receiver_bank_account.optional(),
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

/// Each asked id's item, read on its own (or why it could not be).
pub type ListItems = HashMap<String, Result<ListStatus, AnswerError>>;

/// Reads a list answer's `data` item by item. Items are matched to the
/// request by the echoed `key` (`md5` or `hash`), never by position; an
/// item naming nothing that was asked is skipped (and reported in the
/// second value). Each asked id gets its own result: an item that cannot be
/// read is an error for that id alone.
///
/// `data` is the JSON text of the answer's `data`, so that amounts are
/// read exactly.
pub fn read_list(
    data: &str,
    key: &str,
    asked: &[String],
) -> Result<(ListItems, Vec<String>), AnswerError> {
    let arr: Vec<&RawValue> =
        serde_json::from_str(data).map_err(|_| AnswerError::from("data is not an array"))?;
    let mut out: ListItems = HashMap::new();
    let mut stray = Vec::new();
    for entry in arr {
        // An item that is not an object names nothing.
        let fields: BTreeMap<String, &RawValue> =
            serde_json::from_str(entry.get()).unwrap_or_default();
        let id = fields
            .get(key)
            .and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        let Some(id) = id.as_deref() else {
            stray.push(format!("an item without {key}"));
            continue;
        };
        let Some(id) = asked.iter().find(|a| a.eq_ignore_ascii_case(id)) else {
            stray.push(format!("{key} {id:?}, which was not asked for"));
            continue;
        };
        let item = read_item(&fields);
        match out.get(id) {
            // The same answer twice is harmless; two different answers
            // for one id cannot be trusted.
            Some(prev) if prev != &item => {
                out.insert(
                    id.clone(),
                    Err(format!("the answer holds two different items for {key} {id}").into()),
                );
            }
            Some(_) => {}
            None => {
                out.insert(id.clone(), item);
            }
        }
    }
    Ok((out, stray))
}

fn read_item(fields: &BTreeMap<String, &RawValue>) -> Result<ListStatus, AnswerError> {
    let status = match fields.get("status") {
        Some(r) => match serde_json::from_str::<Value>(r.get()) {
            Ok(Value::String(s)) => Some(s),
            Ok(Value::Number(n)) => Some(n.to_string()),
            Ok(_) => None,
            Err(e) => return Err(AnswerError(e.to_string())),
        },
        None => None,
    };
    let data = fields.get("data").map(|r| r.get()).unwrap_or("null");
    match status.as_deref() {
        Some("SUCCESS") => Ok(ListStatus::Success {
            transaction: Box::new(Transaction::from_text(data)?),
        }),
        Some("NOT_FOUND") => Ok(ListStatus::NotFound),
        Some("FAILED") => Ok(ListStatus::Failed),
        Some("STATIC_QR") => Ok(ListStatus::StaticQr),
        other => Err(format!("unknown status {other:?}").into()),
    }
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

    const HASH: &str = "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9";

    #[test]
    fn timestamps_are_read_as_integers_or_floats() {
        let v = json!({"hash": HASH,
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
        assert!(err.0.contains("hash"), "{err}");
    }

    #[test]
    fn a_null_or_missing_payer_is_none_but_the_paid_rule_fields_are_required() {
        for payer in [json!(null), json!(""), json!({"x": 1})] {
            let v = json!({"hash": HASH, "fromAccountId": payer, "toAccountId": "c@d", "currency": "USD", "amount": "1.50"});
            let t = Transaction::from_json(&v).expect("payer is optional");
            assert_eq!(t.from_account_id, None);
        }
        let ok = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1.5});
        assert!(Transaction::from_json(&ok).is_ok(), "no payer at all");
        for (field, bad) in [
            ("amount", json!(null)),
            ("amount", json!("abc")),
            ("amount", json!(-1)),
            ("currency", json!("EUR")),
            ("currency", json!(null)),
            ("toAccountId", json!(null)),
            ("hash", json!(null)),
        ] {
            let mut v = ok.clone();
            v[field] = bad.clone();
            assert!(
                Transaction::from_json(&v).is_err(),
                "{field} = {bad} must be refused"
            );
        }
    }

    #[test]
    fn unreadable_dates_are_absent_not_fatal() {
        for bad in [
            json!("yesterday"),
            json!(true),
            json!({"t": 1}),
            json!(1e300),
        ] {
            let v = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1,
                           "createdDateMs": bad, "acknowledgedDateMs": bad});
            let t = Transaction::from_json(&v).expect("readable");
            assert_eq!(t.created_date_ms, None);
        }
    }

    #[test]
    fn amounts_are_read_from_their_text_not_through_a_float() {
        let text = |amount: &str| {
            format!(r#"{{"hash":"{HASH}","toAccountId":"c@d","currency":"USD","amount":{amount}}}"#)
        };
        let t = Transaction::from_text(&text("4.9999999999999999999")).expect("readable");
        assert_eq!(t.amount.to_string(), "4.9999999999999999999");
        let t = Transaction::from_text(&text("\"1.50\"")).expect("readable");
        assert_eq!(t.amount, Decimal::new(15, 1));
        for bad in ["1e400", "0.00000000000000000000000000000001", "\"1,5\""] {
            let e = Transaction::from_text(&text(bad)).expect_err(bad);
            assert!(e.0.contains("amount"), "{e}");
        }
        // The same through a list answer.
        let md5 = "a".repeat(32);
        let list = format!(
            r#"[{{"md5":"{md5}","status":"SUCCESS","data":{}}},{{"md5":"{}","status":"SUCCESS","data":{}}}]"#,
            text("4.9999999999999999999"),
            "b".repeat(32),
            text("1e400"),
        );
        let asked = vec![md5.clone(), "b".repeat(32)];
        let (items, _) = read_list(&list, "md5", &asked).expect("an array");
        match &items[&md5] {
            Ok(ListStatus::Success { transaction }) => {
                assert_eq!(transaction.amount.to_string(), "4.9999999999999999999")
            }
            other => panic!("{other:?}"),
        }
        assert!(items[&asked[1]].is_err(), "1e400 alone is unreadable");
        let env = Envelope::from_slice(
            format!(
                r#"{{"responseCode":0,"errorCode":null,"data":{}}}"#,
                text("1e400")
            )
            .as_bytes(),
        )
        .expect("an envelope");
        assert!(Transaction::from_text(&env.data_text()).is_err());
    }

    #[test]
    fn each_list_item_stands_alone() {
        let asked: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.repeat(32))
            .collect();
        let tx = json!({"hash": HASH, "fromAccountId": "p@b", "toAccountId": "c@d", "currency": "USD", "amount": 1.5});
        let mut null_payer = tx.clone();
        null_payer["fromAccountId"] = json!(null);
        let mut bad_amount = tx.clone();
        bad_amount["amount"] = json!("1,50");
        let data = json!([
            {"md5": asked[0], "status": "SUCCESS", "data": tx},
            {"md5": asked[1], "status": "SUCCESS", "data": null_payer},
            {"md5": asked[2], "status": "NOT_FOUND", "data": null},
            {"md5": asked[3], "status": "PENDING?", "data": null},
            {"md5": asked[4], "status": "SUCCESS", "data": bad_amount},
            {"md5": "f".repeat(32), "status": "SUCCESS", "data": tx},
            {"status": "NOT_FOUND"},
            "not an object",
        ]);
        let (items, stray) = read_list(&data.to_string(), "md5", &asked).expect("an array");
        assert!(matches!(items[&asked[0]], Ok(ListStatus::Success { .. })));
        match &items[&asked[1]] {
            Ok(ListStatus::Success { transaction }) => {
                assert_eq!(transaction.from_account_id, None)
            }
            other => panic!("null payer: {other:?}"),
        }
        assert_eq!(items[&asked[2]], Ok(ListStatus::NotFound));
        assert!(items[&asked[3]].is_err(), "unknown status");
        assert!(items[&asked[4]].is_err(), "unreadable amount");
        assert_eq!(stray.len(), 3, "{stray:?}");
        assert!(read_list(&json!({"x": 1}).to_string(), "md5", &asked).is_err());
    }

    #[test]
    fn a_nul_in_a_field_the_paid_rule_needs_makes_the_item_unreadable_naming_the_field() {
        let ok = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1});
        for (field, bad) in [
            ("toAccountId", json!("c@d\u{0}")),
            ("currency", json!("US\u{0}D")),
            ("hash", json!(format!("{}\u{0}", &HASH[..63]))),
            ("toAccountId", json!({"x": 1})),
        ] {
            let mut v = ok.clone();
            v[field] = bad.clone();
            let e = Transaction::from_json(&v).expect_err(field);
            assert!(e.0.starts_with(field), "{field} = {bad}: {e}");
        }
        // A lone surrogate is no character: the item is unreadable, the
        // error naming the field.
        let text =
            format!(r#"{{"hash":"{HASH}","toAccountId":"c@d\ud800","currency":"USD","amount":1}}"#);
        let e = Transaction::from_text(&text).expect_err("lone surrogate");
        assert!(e.0.starts_with("toAccountId"), "{e}");
    }

    #[test]
    fn an_informative_field_that_cannot_be_stored_reads_as_absent() {
        let v = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1,
            "fromAccountId": "p\u{0}@b", "description": "thanks\u{0}", "externalRef": "\u{0}",
            "instructionRef": "IR\u{0}", "trackingStatus": "\u{0}", "receiverBank": "\u{0}",
            "receiverBankAccount": "\u{0}"});
        let t = Transaction::from_json(&v).expect("readable");
        assert_eq!(t.from_account_id, None);
        assert_eq!(t.description, None);
        assert_eq!(t.external_ref, None);
        assert_eq!(t.instruction_ref, None);
        assert_eq!(t.tracking_status, None);
        assert_eq!(t.receiver_bank, None);
        assert_eq!(t.receiver_bank_account, None);
        let text = format!(
            r#"{{"hash":"{HASH}","toAccountId":"c@d","currency":"USD","amount":1,"description":"a\udc00b","fromAccountId":"p@b"}}"#
        );
        let t = Transaction::from_text(&text).expect("readable");
        assert_eq!(t.description, None);
        assert_eq!(t.from_account_id.as_deref(), Some("p@b"));
        // Other characters are stored as sent.
        let v = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1,
            "description": "ចំណាំ \u{1} \u{7f} \u{fffd} 😀"});
        let t = Transaction::from_json(&v).expect("readable");
        assert_eq!(
            t.description.as_deref(),
            Some("ចំណាំ \u{1} \u{7f} \u{fffd} 😀")
        );
    }

    #[test]
    fn a_time_outside_years_1970_to_9999_reads_as_absent() {
        for (ms, kept) in [
            (json!(-1), false),
            (json!(-1_000_000_000_000_000_i64), false),
            (json!(100_000_000_000_000_000_i64), false),
            (json!(1e17), false),
            (json!(i64::MIN), false),
            (json!(i64::MAX), false),
            (json!(253_402_300_800_000_i64), false),
            (json!("-1e15"), false),
            (json!(0), true),
            (json!(253_402_300_799_999_i64), true),
            (json!(1_586_852_120_700_i64), true),
        ] {
            let v = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1,
                           "createdDateMs": ms, "acknowledgedDateMs": ms});
            let t = Transaction::from_json(&v).expect("readable");
            assert_eq!(t.created_date_ms.is_some(), kept, "{ms}");
            assert_eq!(t.acknowledged_date_ms.is_some(), kept, "{ms}");
        }
    }

    #[test]
    fn a_list_item_with_an_unstorable_field_stands_alone() {
        let asked: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.repeat(32)).collect();
        let tx = json!({"hash": HASH, "toAccountId": "c@d", "currency": "USD", "amount": 1});
        let mut nul_description = tx.clone();
        nul_description["description"] = json!("x\u{0}y");
        let mut far_date = tx.clone();
        far_date["createdDateMs"] = json!(-1e15);
        let mut nul_receiver = tx.clone();
        nul_receiver["toAccountId"] = json!("c@d\u{0}");
        let data = json!([
            {"md5": asked[0], "status": "SUCCESS", "data": tx},
            {"md5": asked[1], "status": "SUCCESS", "data": nul_description},
            {"md5": asked[2], "status": "SUCCESS", "data": far_date},
            {"md5": asked[3], "status": "SUCCESS", "data": nul_receiver},
        ]);
        let (items, _) = read_list(&data.to_string(), "md5", &asked).expect("an array");
        for id in &asked[..3] {
            match &items[id] {
                Ok(ListStatus::Success { transaction }) => {
                    assert_eq!(transaction.description, None);
                    assert_eq!(transaction.created_date_ms, None);
                }
                other => panic!("{other:?}"),
            }
        }
        let e = items[&asked[3]].clone().expect_err("unreadable receiver");
        assert!(e.0.starts_with("toAccountId"), "{e}");
    }
}
