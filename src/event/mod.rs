//! The event a final status produces: its id (`msg_` + a ULID, which is
//! also the `webhook-id`), its type (`payment.paid`, ...) and its body
//! `{"type", "timestamp", "data"}`, where `data` holds the payment under
//! the `payments` column names. The body is built once, stored, and sent
//! byte for byte on every attempt, so every retry carries the same
//! signature input.

pub mod sign;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::payment::{Confirmation, Status};

/// The test event type `events test` sends.
pub const TEST_TYPE: &str = "webhook.test";

/// An event to store with its final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `msg_` + ULID.
    pub id: String,
    /// `payment.` + the status: `paid`, `mismatch`, `failed`, `expired`,
    /// `cancelled`, `paid_late`.
    pub event_type: String,
    /// The payment's md5.
    pub md5: String,
    /// The JSON body, exactly as sent.
    pub payload: String,
    /// When it was recorded (the status's `confirmed_at`).
    pub created_at: DateTime<Utc>,
}

/// The payment as the body's `data` carries it: the `payments` column
/// names, amounts as decimal strings, times in RFC 3339 UTC.
#[derive(Debug, Clone, Serialize)]
pub struct EventData {
    /// md5 of the KHQR.
    pub md5: String,
    /// Expected amount, as stored.
    pub amount: String,
    /// Expected currency.
    pub currency: String,
    /// The final status.
    pub status: &'static str,
    /// Transaction hash (paid, mismatch).
    pub bakong_hash: Option<String>,
    /// Payer.
    pub from_account_id: Option<String>,
    /// Receiver.
    pub to_account_id: Option<String>,
    /// Amount paid, decimal string.
    pub paid_amount: Option<String>,
    /// Currency paid.
    pub paid_currency: Option<String>,
    /// Free text from Bakong.
    pub description: Option<String>,
    /// When the payer paid (RFC 3339 UTC).
    pub paid_at: Option<String>,
    /// When the daemon recorded the status (RFC 3339 UTC).
    pub confirmed_at: String,
    /// The shop's order reference, when the row has one.
    pub order_id: Option<String>,
    /// The shop's JSON object, when the row has one.
    pub metadata: Option<serde_json::Value>,
}

/// The row an event is about, as the write returned it.
#[derive(Debug, Clone, Default)]
pub struct EventRow<'a> {
    /// md5 column.
    pub md5: &'a str,
    /// amount column, as text.
    pub amount: &'a str,
    /// currency column.
    pub currency: &'a str,
    /// order_id column.
    pub order_id: Option<&'a str>,
    /// metadata column (JSON text).
    pub metadata: Option<&'a str>,
}

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: &'a T,
}

/// RFC 3339 UTC with milliseconds and a `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new event id: `msg_` + a ULID (sortable by time, unique).
pub fn new_id() -> String {
    format!("msg_{}", ulid::Ulid::new())
}

/// The event type of a status change.
pub fn type_of(status: Status) -> &'static str {
    match status {
        Status::Pending => "payment.pending",
        Status::Paid => "payment.paid",
        Status::Mismatch => "payment.mismatch",
        Status::Failed => "payment.failed",
        Status::Expired => "payment.expired",
        Status::Cancelled => "payment.cancelled",
        Status::PaidLate => "payment.paid_late",
    }
}

/// A body `{"type", "timestamp", "data"}`.
pub fn body<T: Serialize>(event_type: &str, at: DateTime<Utc>, data: &T) -> String {
    serde_json::to_string(&Body {
        event_type,
        timestamp: rfc3339(at),
        data,
    })
    // Serialising plain strings and options cannot fail; an empty object
    // would still be a valid body.
    .unwrap_or_else(|_| "{}".into())
}

/// The event of a final status just written: `md5`, `amount` and
/// `currency` as the row holds them, the rest from the write.
pub fn final_event(
    row: &EventRow<'_>,
    status: Status,
    confirmation: Option<&Confirmation>,
    now: DateTime<Utc>,
) -> NewEvent {
    let c = confirmation;
    let md5 = row.md5;
    let data = EventData {
        md5: md5.to_string(),
        amount: row.amount.to_string(),
        currency: row.currency.to_string(),
        status: status.as_str(),
        order_id: row.order_id.map(str::to_string),
        // The column holds a JSON object (the table's CHECK).
        metadata: row.metadata.and_then(|m| serde_json::from_str(m).ok()),
        bakong_hash: c.map(|c| c.hash.clone()),
        from_account_id: c.and_then(|c| c.from_account_id.clone()),
        to_account_id: c.map(|c| c.to_account_id.clone()),
        paid_amount: c.map(|c| crate::money::amount_text(c.paid_amount)),
        paid_currency: c.map(|c| c.paid_currency.code().to_string()),
        description: c.and_then(|c| c.description.clone()),
        paid_at: c.and_then(|c| c.paid_at).map(rfc3339),
        confirmed_at: rfc3339(now),
    };
    let event_type = type_of(status);
    NewEvent {
        id: new_id(),
        event_type: event_type.to_string(),
        md5: md5.to_string(),
        payload: body(event_type, now, &data),
        created_at: now,
    }
}

/// The body of `events test`: a `webhook.test` event with an example
/// payment, never stored.
pub fn test_event(now: DateTime<Utc>) -> NewEvent {
    let data = EventData {
        md5: "00000000000000000000000000000000".into(),
        amount: "1.00".into(),
        currency: "USD".into(),
        status: "paid",
        bakong_hash: Some("0".repeat(64)),
        from_account_id: Some("customer@bank".into()),
        to_account_id: Some("shop@bank".into()),
        paid_amount: Some("1.00".into()),
        paid_currency: Some("USD".into()),
        description: Some("test event from bakong-poller events test".into()),
        paid_at: Some(rfc3339(now)),
        confirmed_at: rfc3339(now),
        order_id: Some("order-1042".into()),
        metadata: Some(serde_json::json!({"table": 4})),
    };
    NewEvent {
        id: new_id(),
        event_type: TEST_TYPE.into(),
        md5: data.md5.clone(),
        payload: body(TEST_TYPE, now, &data),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn a_paid_event_carries_the_payment_under_the_column_names() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.5Z")
            .expect("test value")
            .with_timezone(&Utc);
        let c = Confirmation {
            hash: "ab".repeat(32),
            from_account_id: Some("payer@aba".into()),
            to_account_id: "shop@devb".into(),
            paid_amount: "1.50".parse().expect("test value"),
            paid_currency: Currency::Usd,
            description: None,
            paid_at: Some(now),
        };
        let md5 = "f".repeat(32);
        let row = EventRow {
            md5: &md5,
            amount: "1.50",
            currency: "USD",
            order_id: Some("order-7"),
            metadata: Some(r#"{"table":4}"#),
        };
        let e = final_event(&row, Status::Paid, Some(&c), now);
        assert!(e.id.starts_with("msg_") && e.id.len() == 30, "{}", e.id);
        assert_eq!(e.event_type, "payment.paid");
        let v: serde_json::Value = serde_json::from_str(&e.payload).expect("test value");
        assert_eq!(v["type"], "payment.paid");
        assert_eq!(v["timestamp"], "2026-11-30T10:00:00.500Z");
        assert_eq!(v["data"]["paid_amount"], "1.5");
        assert_eq!(v["data"]["amount"], "1.50");
        assert_eq!(v["data"]["status"], "paid");
        assert_eq!(v["data"]["to_account_id"], "shop@devb");
        assert_eq!(v["data"]["paid_at"], "2026-11-30T10:00:00.500Z");
        let keys: Vec<&String> = v["data"].as_object().expect("test value").keys().collect();
        assert_eq!(v["data"]["order_id"], "order-7");
        assert_eq!(v["data"]["metadata"]["table"], 4);
        assert_eq!(keys.len(), 14, "every public payment column: {keys:?}");
    }

    #[test]
    fn the_published_json_schema_names_exactly_the_fields_of_the_body() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../config/webhook-event.schema.json"))
                .expect("the schema is JSON");
        let names = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
            k.sort();
            k
        };
        let body: serde_json::Value =
            serde_json::from_str(&test_event(Utc::now()).payload).expect("json");
        assert_eq!(names(&schema["properties"]), names(&body));
        assert_eq!(
            names(&schema["properties"]["data"]["properties"]),
            names(&body["data"])
        );
        let required = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            k.sort();
            k
        };
        assert_eq!(
            required(&schema["properties"]["data"]["required"]),
            names(&body["data"])
        );
        let types: Vec<&str> = schema["properties"]["type"]["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for s in Status::ALL.into_iter().filter(|s| s.is_final()) {
            assert!(types.contains(&type_of(s)), "{s}");
        }
        assert!(types.contains(&TEST_TYPE));
    }
}
