//! The `/v1` endpoints: faults first, then the token, then the spec's
//! request validation (errorCode 5), then the answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{Inner, OutcomeKind, Sim, SimTx};
use bakong_khqr as khqr;
use bakong_khqr::money::amount_from_json;

/// Every endpoint the simulator serves under `/v1`.
pub const ENDPOINTS: &[&str] = &[
    "request_token",
    "verify",
    "renew_token",
    "generate_deeplink_by_qr",
    "check_transaction_by_md5",
    "check_transaction_by_hash",
    "check_transaction_by_short_hash",
    "check_bakong_account",
    "check_transaction_by_md5_list",
    "check_transaction_by_hash_list",
    "check_transaction_by_instruction_ref",
    "check_transaction_by_external_ref",
];

const NO_AUTH: &[&str] = &["request_token", "verify", "renew_token"];

/// Endpoints the live service answers without a token (a token that is
/// sent is still judged).
const OPTIONAL_AUTH: &[&str] = &["check_bakong_account", "generate_deeplink_by_qr"];

const HTML_403: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

fn envelope(
    status: StatusCode,
    code: i64,
    error: Option<i64>,
    message: &str,
    data: Value,
) -> Response {
    (
        status,
        axum::Json(json!({
            "responseCode": code,
            "responseMessage": message,
            "errorCode": error,
            "data": data,
        })),
    )
        .into_response()
}

fn ok(message: &str, data: Value) -> Response {
    envelope(StatusCode::OK, 0, None, message, data)
}

fn fail(code: i64, message: &str) -> Response {
    let status = match code {
        5 => StatusCode::BAD_REQUEST,
        6 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    };
    envelope(status, 1, Some(code), message, Value::Null)
}

fn missing(what: String) -> Response {
    fail(5, &format!("Missing required fields. {what}"))
}

fn html(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "text/html")], body).into_response()
}

struct InFlight<'a>(&'a Sim);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The md5s a request asks about while it is being answered
/// ([`super::Stats::asked_twice_at_once`]).
struct Asking<'a> {
    sim: &'a Sim,
    md5s: Vec<String>,
}

impl<'a> Asking<'a> {
    fn new(sim: &'a Sim, name: &str, body: &[u8]) -> Self {
        let md5s: Vec<String> = match (name, serde_json::from_slice::<Value>(body)) {
            ("check_transaction_by_md5", Ok(v)) => v
                .get("md5")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect(),
            ("check_transaction_by_md5_list", Ok(Value::Array(items))) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if !md5s.is_empty() {
            let mut asking = sim.asking.lock().unwrap_or_else(|e| e.into_inner());
            let mut twice = 0;
            for m in &md5s {
                let n = asking.entry(m.clone()).or_insert(0);
                twice += u64::from(*n > 0);
                *n += 1;
            }
            drop(asking);
            if twice > 0 {
                sim.lock().stats.asked_twice_at_once += twice;
            }
        }
        Asking { sim, md5s }
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if self.md5s.is_empty() {
            return;
        }
        let mut asking = self.sim.asking.lock().unwrap_or_else(|e| e.into_inner());
        for m in &self.md5s {
            if let Some(n) = asking.get_mut(m) {
                *n -= 1;
                if *n == 0 {
                    asking.remove(m);
                }
            }
        }
    }
}

/// The one handler behind `/v1/{endpoint}`.
pub(super) async fn handle(
    State(sim): State<Arc<Sim>>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let n = sim.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&sim);
    let name = ENDPOINTS
        .iter()
        .find(|e| **e == endpoint)
        .copied()
        .unwrap_or("unknown");
    let _asking = Asking::new(&sim, name, &body);
    let response = answer(&sim, name, &headers, &body, arrived, n).await;
    sim.note_status(name, response.status().as_u16());
    response
}

async fn answer(
    sim: &Sim,
    name: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    arrived: Instant,
    in_flight: u64,
) -> Response {
    // Faults and rate limits, decided under the lock, applied after it.
    let (faults, limited) = {
        let mut g = sim.lock();
        g.stats.peak_concurrent = g.stats.peak_concurrent.max(in_flight);
        sim.note_arrival(&mut g, arrived);
        let limited = if g.faults.geo_block {
            None
        } else {
            sim.rate_check(&mut g, arrived)
        };
        (g.faults.clone(), limited)
    };
    if faults.geo_block {
        return html(StatusCode::FORBIDDEN, HTML_403);
    }
    if name == "unknown" {
        return html(
            StatusCode::NOT_FOUND,
            "<html><body>404 Not Found</body></html>",
        );
    }
    if let Some(retry_after) = limited {
        let mut r = fail_429();
        if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    // The token is judged on arrival (so stale-token counts are exact);
    // the answer, like every answer, comes after the added latency.
    let refused = if NO_AUTH.contains(&name) {
        None
    } else {
        let mut g = sim.lock();
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if bearer.is_none() && OPTIONAL_AUTH.contains(&name) {
            None
        } else {
            sim.check_token(&mut g, bearer).err()
        }
    };
    // The quota counts requests with an accepted token, as the live
    // service counts them per token.
    let over_quota = if refused.is_none() && !NO_AUTH.contains(&name) {
        sim.quota_check(&mut sim.lock(), arrived)
    } else {
        None
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(limit) = over_quota {
        let message =
            format!("Daily request limit of {limit} exceeded. Please try again tomorrow.");
        let status = if faults.daily_limit_429 {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::OK
        };
        let code = (!faults.daily_limit_without_code).then_some(17);
        return envelope(status, 1, code, &message, Value::Null);
    }
    if let Some(why) = refused {
        if faults.all_403_for_refused_token
            || (faults.list_403_for_refused_token && name == "check_transaction_by_md5_list")
        {
            return html(StatusCode::FORBIDDEN, HTML_403);
        }
        if faults.bare_401 {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return envelope(
            StatusCode::UNAUTHORIZED,
            1,
            Some(6),
            &format!("Unauthorized. ({why})"),
            Value::Null,
        );
    }
    let roll = |ratio: f64| ratio > 0.0 && rand::rng().random_bool(ratio.clamp(0.0, 1.0));
    if roll(faults.hang_ratio) {
        tokio::select! {
            _ = sim.shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if roll(faults.error_5xx_ratio) {
        let codes = [500u16, 502, 503];
        let status = StatusCode::from_u16(codes[rand::rng().random_range(0..codes.len())])
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "<html><body>Internal Server Error</body></html>").into_response();
    }
    if roll(faults.malformed_ratio) {
        let bodies = [
            "{\"responseCode\":0,\"responseMessage\":\"Getting transaction successfully.\",\"data\":{\"hash\":\"84",
            "{\"responseCode\":",
            "not json at all",
            "",
        ];
        let b = bodies[rand::rng().random_range(0..bodies.len())];
        return (StatusCode::OK, [("content-type", "application/json")], b).into_response();
    }
    if name == "check_transaction_by_md5_list" && faults.md5_list_closed {
        return html(StatusCode::FORBIDDEN, HTML_403);
    }
    let mut g = sim.lock();
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return missing(format!("The body is not JSON: {e}")),
    };
    match name {
        "request_token" => request_token(sim, &mut g, &body, faults.email_down),
        "verify" => verify(sim, &mut g, &body),
        "renew_token" => renew(sim, &mut g, &body),
        "generate_deeplink_by_qr" => deeplink(&body),
        "check_transaction_by_md5" => match text(&body, "md5", 1, 255) {
            Ok(m) => single(&g, g.by_md5.get(m).copied()),
            Err(r) => r,
        },
        "check_transaction_by_hash" => match text(&body, "hash", 1, 255) {
            Ok(h) => single(&g, g.by_hash.get(h).copied()),
            Err(r) => r,
        },
        "check_transaction_by_short_hash" => short_hash(&g, &body),
        "check_transaction_by_instruction_ref" => match text(&body, "instructionRef", 1, 255) {
            Ok(r) => single(&g, g.txs.iter().position(|t| t.ids.instruction_ref == r)),
            Err(r) => r,
        },
        "check_transaction_by_external_ref" => match text(&body, "externalRef", 1, 35) {
            Ok(r) => single(&g, g.txs.iter().position(|t| t.ids.external_ref == r)),
            Err(r) => r,
        },
        "check_bakong_account" => account(&g, &body),
        "check_transaction_by_md5_list" => list(&g, &body, "md5"),
        "check_transaction_by_hash_list" => list(&g, &body, "hash"),
        _ => html(
            StatusCode::NOT_FOUND,
            "<html><body>404 Not Found</body></html>",
        ),
    }
}

fn fail_429() -> Response {
    envelope(
        StatusCode::TOO_MANY_REQUESTS,
        1,
        None,
        "Too many requests",
        Value::Null,
    )
}

/// A required string field with the spec's length bounds.
fn text<'a>(body: &'a Value, key: &str, min: usize, max: usize) -> Result<&'a str, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Err(missing(format!("{key} is required."))),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n < min || n > max {
                Err(missing(format!("{key} must be {min} to {max} characters.")))
            } else {
                Ok(s)
            }
        }
        Some(_) => Err(missing(format!("{key} must be a string."))),
    }
}

enum State3 {
    Pending,
    Paid,
    Failed,
}

fn state_of(t: &SimTx) -> State3 {
    if Instant::now() < t.at {
        return State3::Pending;
    }
    match t.outcome {
        OutcomeKind::Paid => State3::Paid,
        OutcomeKind::Failed => State3::Failed,
        OutcomeKind::Never => State3::Pending,
    }
}

fn tx_json(t: &SimTx) -> Value {
    // Live-service shape: amount as a JSON number, timestamps as integers.
    let amount: Value =
        serde_json::from_str(&t.paid_amount.normalize().to_string()).unwrap_or(Value::Null);
    let created = t.created_date_ms.unwrap_or(t.at_ms);
    json!({
        "hash": t.ids.hash,
        "fromAccountId": t.from_account,
        "toAccountId": t.paid_to,
        "currency": t.paid_currency.code(),
        "amount": amount,
        "description": t.description,
        "createdDateMs": created,
        "acknowledgedDateMs": created.saturating_add(250),
        "trackingStatus": null,
        "receiverBank": null,
        "receiverBankAccount": null,
        "instructionRef": t.ids.instruction_ref,
        "externalRef": t.ids.external_ref,
    })
}

const NOT_FOUND: &str = "Transaction could not be found. Please check and try again.";

fn single(g: &Inner, idx: Option<usize>) -> Response {
    let Some(t) = idx.and_then(|i| g.txs.get(i)) else {
        return fail(1, NOT_FOUND);
    };
    match state_of(t) {
        State3::Pending => fail(1, NOT_FOUND),
        State3::Failed => fail(3, "Transaction failed."),
        State3::Paid => ok("Getting transaction successfully.", tx_json(t)),
    }
}

fn short_hash(g: &Inner, body: &Value) -> Response {
    let hash = match text(body, "hash", 8, 8) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let amount = match body.get("amount") {
        Some(v @ Value::Number(_)) => match amount_from_json(v) {
            Some(a) => a,
            None => return missing("amount must be a number.".into()),
        },
        None | Some(Value::Null) => return missing("amount is required.".into()),
        Some(_) => return missing("amount must be a number.".into()),
    };
    let currency = match text(body, "currency", 3, 3) {
        Ok(c @ ("USD" | "KHR")) => c,
        Ok(_) => return missing("currency must be 'USD' or 'KHR'.".into()),
        Err(r) => return r,
    };
    let idx = g.txs.iter().position(|t| {
        t.ids.short_hash == hash && t.paid_amount == amount && t.paid_currency.code() == currency
    });
    single(g, idx)
}

fn is_account_id(s: &str) -> bool {
    let Some((name, bank)) = s.split_once('@') else {
        return false;
    };
    !name.is_empty()
        && !bank.is_empty()
        && s.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && bank.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn account(g: &Inner, body: &Value) -> Response {
    let id = match text(body, "accountId", 1, 255) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !is_account_id(id) {
        return fail(12, "Account ID is invalid");
    }
    if g.accounts.contains(id) {
        ok("Account ID exists", Value::Null)
    } else {
        fail(11, "Account ID not found")
    }
}

fn list(g: &Inner, body: &Value, key: &str) -> Response {
    let Some(items) = body.as_array() else {
        return missing(format!("the body must be a JSON array of {key} strings."));
    };
    if items.is_empty() || items.len() > super::MAX_LIST {
        return missing(format!("the array must hold 1 to 50 {key} strings."));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = item.as_str().filter(|s| !s.is_empty() && s.len() <= 255) else {
            return missing(format!(
                "every {key} must be a string of 1 to 255 characters."
            ));
        };
        let idx = if key == "md5" {
            g.by_md5.get(id)
        } else {
            g.by_hash.get(id)
        };
        let t = idx.and_then(|i| g.txs.get(*i));
        let (status, message, data) = match t.map(state_of) {
            Some(State3::Paid) => (
                "SUCCESS",
                "Getting transaction successfully.",
                t.map(tx_json).unwrap_or(Value::Null),
            ),
            Some(State3::Failed) if key == "hash" => ("FAILED", "Transaction failed.", Value::Null),
            _ => ("NOT_FOUND", NOT_FOUND, Value::Null),
        };
        out.push(json!({ key: id, "status": status, "message": message, "data": data }));
    }
    ok("Getting transaction successfully.", Value::Array(out))
}

fn request_token(sim: &Sim, g: &mut Inner, body: &Value, email_down: bool) -> Response {
    let email = match text(body, "email", 1, 30) {
        Ok(e) => e.to_string(),
        Err(r) => return r,
    };
    for key in ["organization", "project"] {
        if let Err(r) = text(body, key, 1, 100) {
            return r;
        }
    }
    if email_down {
        return fail(7, "Email server has been down.");
    }
    if g.registered.contains(&email) {
        return fail(8, "Email has been registered already.");
    }
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let code: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let _ = sim;
    g.registered.insert(email.clone());
    g.codes.insert(code.clone(), email.clone());
    tracing::info!(email = %email, code = %code, "simulator: verification code emailed");
    g.mailbox.push(super::Mail { email, code });
    ok("Email has been sent", Value::Null)
}

fn verify(sim: &Sim, g: &mut Inner, body: &Value) -> Response {
    let code = match text(body, "code", 20, 20) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match g.codes.remove(code) {
        Some(email) => {
            let token = sim.mint(g, &email, false);
            ok("Token has been issued", json!({ "token": token }))
        }
        None => fail(
            10,
            "Not registered yet. (unknown or used verification code)",
        ),
    }
}

fn renew(sim: &Sim, g: &mut Inner, body: &Value) -> Response {
    let email = match text(body, "email", 1, 30) {
        Ok(e) => e.to_string(),
        Err(r) => return r,
    };
    if !g.registered.contains(&email) {
        return fail(10, "Not registered yet.");
    }
    let token = sim.mint(g, &email, true);
    ok("Token has been issued", json!({ "token": token }))
}

fn deeplink(body: &Value) -> Response {
    let qr = match text(body, "qr", 1, 1000) {
        Ok(q) => q,
        Err(r) => return r,
    };
    match body.get("sourceInfo") {
        None | Some(Value::Null) => {}
        Some(info @ Value::Object(_)) => {
            for key in ["appIconUrl", "appName", "appDeepLinkCallback"] {
                if let Err(r) = text(info, key, 1, 1000) {
                    return r;
                }
            }
        }
        Some(_) => return missing("sourceInfo must be an object.".into()),
    }
    match khqr::decode(qr) {
        Err(e) => fail(
            4,
            &format!("Error occurred on requesting deeplink from provider. ({e})"),
        ),
        Ok(k) if !k.is_dynamic() || k.amount.is_none_or(|a| a <= Decimal::ZERO) => {
            fail(2, "Sorry, the system does not support static QR code.")
        }
        Ok(_) => {
            let id: String = (0..17)
                .map(|_| {
                    let c = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
                    c[rand::rng().random_range(0..c.len())] as char
                })
                .collect();
            ok(
                "Getting deep link successfully",
                json!({ "shortLink": format!("https://bakong-sim.page.link/{id}") }),
            )
        }
    }
}
