//! The HTTP API for shops on other hosts: open, read, list and cancel
//! payments with API keys, under `/v1`, served by `run` on `[api] listen`.
//! Every daemon of a PostgreSQL fleet answers the same (everything is read
//! from the database on each request, keys included, so a revocation is
//! effective at once everywhere). Creating a payment never waits for
//! Bakong. The OpenAPI document (`GET /v1/openapi.json`) is generated from
//! the types and handlers below (`utoipa`), not written beside them.

pub mod checkout;
pub mod keys;
pub mod problem;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::info;
use utoipa::{OpenApi, ToSchema};

use crate::config::Settings;
use crate::money::Currency;
use crate::payment::Status;
use crate::store::{
    ApiKeyRow, CancelOutcome, Created, NewPayment, PageFilter, PaymentRow, Store, Target,
};
pub use problem::{FieldError, Problem};

/// The largest request body (64 KB); a larger one is 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest lifetime a payment can be opened with.
pub const MAX_LIFETIME: TimeDelta = TimeDelta::days(30);

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The payments database.
    pub store: Store,
    /// The settings in force.
    pub settings: Arc<Settings>,
    /// Request counts and latencies, when `[metrics] listen` is set.
    pub http: Option<crate::metrics::HttpInstruments>,
    /// The Bakong client, for the deeplink of a new payment (`None`: no
    /// deeplink is fetched).
    pub client: Option<crate::bakong::Client>,
    /// Deeplink fetches in flight at once (a burst of creates must not
    /// take the request budget confirmations need).
    pub deeplinks: Arc<tokio::sync::Semaphore>,
}

/// The API's routes on `state`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/payments", post(create_payment).get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/v1/payments/{id}/qr.svg", get(qr_svg))
        .route("/v1/payments/{id}/qr.png", get(qr_png))
        .route("/v1/openapi.json", get(openapi))
        .merge(checkout::routes())
        .fallback(|| async { Problem::not_found("no such route; see GET /v1/openapi.json") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::map_response(as_problem))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, with the hardened
/// listener of the metrics endpoint (header and idle timeouts, a request
/// timeout, a connection cap, the body cap).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) {
    let mut limits = crate::metrics::server::Limits::from(&state.settings.metrics);
    // The router caps bodies itself (its 413 is a problem document); the
    // listener's cap only stops what no request of this API needs.
    limits.max_body_bytes = 4 * MAX_BODY_BYTES;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "api: serving /v1 (see GET /v1/openapi.json)");
    }
    crate::metrics::server::run(listener, router(state), limits, shutdown).await;
}

/// Counts each request by route template and status class, with its
/// latency (never a key, an id or a URL in a label).
async fn observe(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let r = next.run(req).await;
    if let Some(h) = &s.http {
        h.observe(&route, r.status().as_u16(), started.elapsed());
    }
    r
}

/// The listener's own refusals (a body over the cap, a request over its
/// time) as problems too.
async fn as_problem(r: Response) -> Response {
    let plain = !r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/"));
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE if plain => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request body is too large",
            format!("a request body is at most {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        StatusCode::REQUEST_TIMEOUT if plain => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "The request took too long",
            "the request was not complete in time; retry",
        )
        .into_response(),
        _ => r,
    }
}

/// The key a request carries, checked; `write`: it must be allowed to
/// write.
async fn authorize(s: &ApiState, headers: &HeaderMap, write: bool) -> Result<ApiKeyRow, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized(
            "send the key as `Authorization: Bearer KEY` (bakong-poller api-key create)",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .and_then(keys::parse);
    let Some((id, secret)) = presented else {
        return Err(Problem::unauthorized(
            "the Authorization header holds no API key",
        ));
    };
    let row = s.store.api_key(&id).await?;
    let Some(row) = row.filter(|r| keys::matches(r, secret)) else {
        return Err(Problem::unauthorized("the API key is not valid"));
    };
    if row.revoked_ms.is_some() {
        return Err(Problem::unauthorized("the API key was revoked"));
    }
    if write && !keys::can_write(&row) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The API key may only read",
            format!(
                "key {} is read-only; use a key made without --read-only",
                row.id
            ),
        ));
    }
    Ok(row)
}

/// A payment as the API answers it: the table's public columns under their
/// names, amounts as decimal strings, times RFC 3339 UTC (the shapes of
/// the webhook events), `id` the public id.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "9f86d081884c7d659a2feaa0c55ad015",
    "status": "paid",
    "amount": "5.00",
    "currency": "USD",
    "md5": "b1c250304b8594e4c6b53dd44791b57a",
    "qr": "00020101021229180014shop@devb5204599953038405405.005802KH5913Sok Chea Shop6010Phnom Penh99340013176494400000001131764944600000630407A5",
    "bakong_hash": "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9",
    "from_account_id": "customer@abaa",
    "to_account_id": "shop@devb",
    "paid_amount": "5",
    "paid_currency": "USD",
    "description": null,
    "paid_at": "2026-12-05T10:00:03.120Z",
    "confirmed_at": "2026-12-05T10:00:03.800Z",
    "expires_at": "2026-12-05T10:15:00.000Z",
    "created_at": "2026-12-05T10:00:00.000Z",
    "order_id": "order-1042",
    "metadata": {"table": 4},
    "redirect_url": "https://shop.example.com/thanks",
    "checkout_url": "https://pay.example.com/pay/9f86d081884c7d659a2feaa0c55ad015",
    "deeplink": "https://bakong.page.link/2yWs8JdLLUhFn8Px9"
}))]
pub struct PaymentObject {
    /// The public id (32 hex): the id in URLs.
    pub id: String,
    /// `pending`, `paid`, `mismatch`, `failed`, `expired`, `cancelled`, `paid_late`.
    pub status: String,
    /// Expected amount, a decimal string.
    pub amount: String,
    /// `USD` or `KHR`.
    pub currency: String,
    /// md5 of the KHQR string.
    pub md5: String,
    /// The KHQR string, when kept.
    pub qr: Option<String>,
    /// Transaction hash (paid, mismatch, paid_late).
    pub bakong_hash: Option<String>,
    /// Payer's account, when reported.
    pub from_account_id: Option<String>,
    /// Receiving account.
    pub to_account_id: Option<String>,
    /// Amount paid, a decimal string.
    pub paid_amount: Option<String>,
    /// Currency paid.
    pub paid_currency: Option<String>,
    /// Free text Bakong reported.
    pub description: Option<String>,
    /// When the payer paid.
    pub paid_at: Option<String>,
    /// When the daemon recorded the final status.
    pub confirmed_at: Option<String>,
    /// When the payment expires (its `expires_at`, or created +
    /// `poller.payment_ttl`).
    pub expires_at: Option<String>,
    /// When the row was created.
    pub created_at: Option<String>,
    /// The shop's order reference.
    pub order_id: Option<String>,
    /// The shop's JSON object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Where the checkout page sends the customer once paid.
    pub redirect_url: Option<String>,
    /// The checkout page the customer watches (`[api] public_url` +
    /// `/pay/` + id; relative when `public_url` is unset).
    pub checkout_url: String,
    /// The Bakong deeplink that opens a bank app on this payment, fetched
    /// once after creation when `[api] public_url` is set and a token
    /// allows it; `null` until then or without one.
    pub deeplink: Option<String>,
}

/// A stored time as RFC 3339 UTC with milliseconds.
fn rfc3339(text: &str) -> Option<String> {
    crate::store::parse_time_text(text).map(crate::event::rfc3339)
}

impl PaymentObject {
    fn of(r: PaymentRow, settings: &Settings) -> Self {
        let created = crate::store::parse_time_text(&r.created_at);
        let expires = match &r.expires_at {
            Some(t) => crate::store::parse_time_text(t),
            None => created.and_then(|c| {
                TimeDelta::from_std(settings.poller.payment_ttl)
                    .ok()
                    .and_then(|ttl| c.checked_add_signed(ttl))
            }),
        };
        PaymentObject {
            checkout_url: format!("{}/pay/{}", settings.api.base(), r.public_id),
            id: r.public_id,
            status: r.status.as_str().into(),
            amount: r.amount,
            currency: r.currency,
            md5: r.md5,
            qr: r.qr,
            bakong_hash: r.bakong_hash,
            from_account_id: r.from_account_id,
            to_account_id: r.to_account_id,
            paid_amount: r.paid_amount,
            paid_currency: r.paid_currency,
            description: r.description,
            paid_at: r.paid_at.as_deref().and_then(rfc3339),
            confirmed_at: r.confirmed_at.as_deref().and_then(rfc3339),
            expires_at: expires.map(crate::event::rfc3339),
            created_at: created.map(crate::event::rfc3339),
            order_id: r.order_id,
            metadata: r.metadata,
            redirect_url: r.redirect_url,
            deeplink: r.deeplink.filter(|d| !d.is_empty()),
        }
    }
}

/// The body of `POST /v1/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "amount": "5.00",
    "currency": "USD",
    "order_id": "order-1042",
    "metadata": {"table": 4},
    "expires_in": "15m",
    "redirect_url": "https://shop.example.com/thanks"
}))]
pub struct CreatePayment {
    /// The amount to pay: a decimal string (`"5.00"`) or a number; USD
    /// takes at most 2 decimals, KHR none.
    #[schema(value_type = String, example = "5.00")]
    pub amount: serde_json::Value,
    /// `USD` or `KHR`.
    #[schema(example = "USD")]
    pub currency: String,
    /// Your order reference (1 to 255 characters; not unique).
    pub order_id: Option<String>,
    /// A JSON object of at most 4 KB, carried by the events.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Lifetime, humantime (`"15m"`, `"1h"`); default `poller.payment_ttl`.
    pub expires_in: Option<String>,
    /// Or the expiry itself, RFC 3339.
    pub expires_at: Option<String>,
    /// Bill number in the KHQR (tag 62.01), at most 25 characters.
    pub bill_number: Option<String>,
    /// Where the checkout page sends the customer once paid (http or https).
    pub redirect_url: Option<String>,
}

fn too_long(field: &str, text: Option<&str>) -> Option<FieldError> {
    text.filter(|t| t.chars().count() > 2048)
        .map(|_| FieldError {
            field: field.into(),
            reason: "at most 2048 characters".into(),
        })
}

/// The body read and checked: every field at fault is named at once.
/// A checked create request: the body, the order to build, the metadata
/// as stored, the amount as the client wrote it.
type Checked = (CreatePayment, crate::open::Order, Option<String>, String);

fn parse_create(body: &[u8]) -> Result<Checked, Problem> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::field("body", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::field("body", "a JSON object is expected"));
    }
    let c: CreatePayment = serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("field"))
            .unwrap_or("body")
            .to_string();
        Problem::field(&field, msg)
    })?;
    let mut errors = Vec::new();
    let mut bad = |field: &str, reason: String| {
        errors.push(FieldError {
            field: field.into(),
            reason,
        })
    };
    let currency = c.currency.parse::<Currency>();
    if let Err(e) = &currency {
        bad("currency", e.to_string());
    }
    let amount_text = match &c.amount {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let amount = match amount_text.as_deref().map(crate::money::parse_amount) {
        None => {
            bad("amount", "a decimal string or a number is expected".into());
            None
        }
        Some(Err(e)) => {
            bad("amount", e.to_string());
            None
        }
        Some(Ok(a)) => {
            if let Ok(cur) = &currency {
                if let Err(e) = crate::money::check_precision(a, *cur) {
                    bad("amount", e.to_string());
                }
            }
            Some(a)
        }
    };
    if let Some(o) = &c.order_id {
        if let Err(e) = crate::payment::check_order_id(o) {
            bad("order_id", e.0);
        }
    }
    let metadata = match &c.metadata {
        Some(m) => match crate::payment::metadata_of(m) {
            Ok(t) => Some(t),
            Err(e) => {
                bad("metadata", e.0);
                None
            }
        },
        None => None,
    };
    let now = Utc::now();
    let ttl = match (&c.expires_in, &c.expires_at) {
        (Some(_), Some(_)) => {
            bad(
                "expires_at",
                "give expires_in or expires_at, not both".into(),
            );
            None
        }
        (Some(d), None) => match humantime::parse_duration(d)
            .ok()
            .and_then(|d| TimeDelta::from_std(d).ok())
        {
            Some(t) if t > TimeDelta::zero() && t <= MAX_LIFETIME => Some(t),
            _ => {
                bad(
                    "expires_in",
                    format!("{d:?}: a duration from 1s to 30 days, e.g. \"15m\""),
                );
                None
            }
        },
        (None, Some(t)) => match DateTime::parse_from_rfc3339(t) {
            Ok(at) => {
                let ttl = at.with_timezone(&Utc) - now;
                if ttl <= TimeDelta::zero() || ttl > MAX_LIFETIME {
                    bad("expires_at", format!("{t:?}: must be in the next 30 days"));
                    None
                } else {
                    Some(ttl)
                }
            }
            Err(e) => {
                bad("expires_at", format!("{t:?} is not RFC 3339: {e}"));
                None
            }
        },
        (None, None) => None,
    };
    // Kept as the URL parser writes it (scheme lower case, no spaces), the
    // form the table's CHECK reads.
    let mut redirect = None;
    if let Some(u) = &c.redirect_url {
        match reqwest::Url::parse(u.trim()) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                redirect = Some(p.as_str().to_string())
            }
            _ => bad("redirect_url", format!("{u:?} is not an http(s) URL")),
        }
    }
    if let Some(e) = too_long("redirect_url", c.redirect_url.as_deref()) {
        errors.push(e);
    }
    let (Some(amount), Ok(currency), Some(text), true) =
        (amount, currency, amount_text, errors.is_empty())
    else {
        return Err(Problem::invalid(errors));
    };
    let order = crate::open::Order {
        amount,
        currency,
        bill: c.bill_number.clone(),
        purpose: None,
        ttl,
    };
    let mut c = c;
    c.redirect_url = redirect;
    // The client's text when the table reads it as written ("5.00"),
    // else the QR's ("5." and ".5" are numbers, not the table's form).
    let text = text.trim();
    let plain = text.len() <= 30
        && text.split_once('.').map_or(
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
            |(i, f)| {
                !i.is_empty()
                    && !f.is_empty()
                    && i.bytes().all(|b| b.is_ascii_digit())
                    && f.bytes().all(|b| b.is_ascii_digit())
            },
        );
    let text = if plain {
        text.to_string()
    } else {
        crate::money::amount_text(amount)
    };
    Ok((c, order, metadata, text))
}

/// The JSON field behind an encoder field.
fn field_of(encoder_field: &str) -> String {
    match encoder_field {
        "bill_number" => "bill_number".into(),
        "amount" => "amount".into(),
        "expires_at" | "created_at" => "expires_in".into(),
        "upi_merchant_account" => "currency".into(),
        other => format!("[merchant] {other}"),
    }
}

/// Fetches the payment's deeplink in the background (never in the
/// request, never in a transaction) and keeps it; '' when Bakong gives
/// none. Only with `[api] public_url` (the deeplink's icon and callback
/// are absolute URLs) and a client.
fn fetch_deeplink(s: &ApiState, row: &PaymentRow) {
    let (Some(client), Some(qr)) = (s.client.clone(), row.qr.clone()) else {
        return;
    };
    let base = s.settings.api.base().to_string();
    let free = client.quota().free(Utc::now().timestamp_millis());
    // Two at a time, only while the budget is free: otherwise the page
    // simply shows no "Open in bank app" for this payment.
    let Ok(permit) = s.deeplinks.clone().try_acquire_owned() else {
        return;
    };
    if base.is_empty() || !free {
        return;
    }
    let source = crate::bakong::SourceInfo {
        app_icon_url: format!("{base}/pay/assets/icon.svg"),
        app_name: s
            .settings
            .merchant
            .name
            .clone()
            .unwrap_or_else(|| "KHQR".into()),
        app_deep_link_callback: row
            .redirect_url
            .clone()
            .unwrap_or_else(|| format!("{base}/pay/{}", row.public_id)),
    };
    let (store, id) = (s.store.clone(), row.id);
    tokio::spawn(async move {
        let _permit = permit;
        let link = match client.generate_deeplink(&qr, &source).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, payment = id.0, "api: no deeplink for this payment");
                String::new()
            }
        };
        if let Err(e) = store.set_deeplink(id, &link).await {
            tracing::debug!(error = %e, "api: could not keep the deeplink");
        }
    });
}

fn open_problem(e: crate::open::OpenError) -> Problem {
    match e {
        crate::open::OpenError::Config(c) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "merchant-not-configured",
            "The daemon cannot build a KHQR",
            format!("{c}; the operator must set [merchant] in the config"),
        ),
        crate::open::OpenError::Khqr(k) => Problem::field(
            &k.field().map(field_of).unwrap_or_else(|| "body".into()),
            k.to_string(),
        ),
        crate::open::OpenError::TooLong => Problem::field("expires_in", "too long a lifetime"),
    }
}

fn location(s: &ApiState, id: &str) -> String {
    format!("{}/v1/payments/{id}", s.settings.api.base())
}

/// Open a payment: builds the KHQR from `[merchant]` and stores the
/// pending row. With `Idempotency-Key`, a retry answers the same payment.
#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "payments",
    request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key with the same body answers the same payment (kept at least 24 h); with another body, 422.")),
    responses(
        (status = 201, description = "Created (or, with Idempotency-Key, created earlier: `Idempotent-Replayed: true`)", body = PaymentObject,
         headers(("Location" = String, description = "The payment's URL"))),
        (status = 401, description = "No valid key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read-only key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database did not answer, or [merchant] is not set", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_payment(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = authorize(&s, &headers, true).await?;
    let idem = match headers.get("idempotency-key") {
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
            _ => {
                return Err(Problem::field(
                    "Idempotency-Key",
                    "1 to 255 visible ASCII characters",
                ))
            }
        },
        None => None,
    };
    let (c, order, metadata, amount_text) = parse_create(&body)?;
    // The request as sent, canonical (keys sorted), for the idempotency check.
    let canonical = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let hash: String = Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let public = crate::payment::new_public_id();
    let started = Utc::now();
    let mut created = None;
    // A QR made in the same millisecond as another alike is the same md5:
    // made again a millisecond later (or, with the same Idempotency-Key,
    // the other request's payment is found).
    for ms in 0..5 {
        let opened =
            crate::open::build_at(&s.settings, &order, started + TimeDelta::milliseconds(ms))
                .map_err(open_problem)?;
        let new = NewPayment {
            md5: opened.md5,
            // As the client wrote it (equal by value to the QR's).
            amount: amount_text.clone(),
            currency: order.currency,
            expires_at: Some(opened.expires_at),
            order_id: c.order_id.clone(),
            metadata: metadata.clone(),
            qr: Some(opened.qr),
            public_id: Some(public.clone()),
            redirect_url: c.redirect_url.clone(),
        };
        match s
            .store
            .create_payment(
                &key.id,
                idem.as_deref().map(|k| (k, hash.as_str())),
                &new,
                Utc::now().timestamp_millis(),
            )
            .await
        {
            Err(e) if crate::store::unique_violation(&e) => continue,
            Err(e) if crate::store::refused_by_table(&e).is_some() => {
                return Err(Problem::field(
                    "body",
                    format!(
                        "the payments table refused it: {}",
                        crate::store::refused_by_table(&e).unwrap_or_default()
                    ),
                ))
            }
            other => {
                created = Some(other?);
                break;
            }
        }
    }
    let created =
        created.ok_or_else(|| Problem::unavailable("the payment could not be stored; retry"))?;
    let (id, replayed) = match created {
        Created::New(id) => (id, false),
        Created::Replayed(id) => (id, true),
        Created::Conflict => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The Idempotency-Key was used with another request",
                "an Idempotency-Key names one request: send the same body, or a new key",
            ))
        }
    };
    let row = s
        .store
        .list_page(&PageFilter {
            before_id: Some(id.0 + 1),
            limit: 1,
            ..Default::default()
        })
        .await?
        .pop()
        .filter(|r| r.id == id)
        .ok_or_else(|| {
            Problem::unavailable("the payment was stored but could not be read back; GET it")
        })?;
    if !replayed {
        info!(key = %key.id, payment = %row.public_id, md5 = %row.md5, "api: payment opened");
        fetch_deeplink(&s, &row);
    }
    let obj = PaymentObject::of(row, &s.settings);
    let mut r = (StatusCode::CREATED, Json(&obj)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location(&s, &obj.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

pub(crate) fn public_id(id: &str) -> Result<&str, Problem> {
    if crate::payment::is_public_id(id) {
        Ok(id)
    } else {
        Err(Problem::not_found(format!(
            "no payment {id:?} (a payment id is 32 lowercase hex)"
        )))
    }
}

async fn find(s: &ApiState, id: &str) -> Result<PaymentRow, Problem> {
    s.store
        .payment_by_public_id(public_id(id)?)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no payment {id}")))
}

/// One payment.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, description = "The payment's public id")),
    responses(
        (status = 200, body = PaymentObject),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_payment(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PaymentObject>, Problem> {
    authorize(&s, &headers, false).await?;
    let row = find(&s, &id).await?;
    Ok(Json(PaymentObject::of(row, &s.settings)))
}

/// The query of `GET /v1/payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this order.
    pub order_id: Option<String>,
    /// Only payments created at or after this time (RFC 3339).
    pub created_after: Option<String>,
    /// Only payments created before this time (RFC 3339).
    pub created_before: Option<String>,
    /// At most this many (1 to 100, default 20).
    pub limit: Option<String>,
    /// The cursor: the id of the last payment of the previous page.
    pub starting_after: Option<String>,
}

/// A page of payments, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    /// The payments.
    pub data: Vec<PaymentObject>,
    /// Whether more follow (ask with `starting_after` = the last id).
    pub has_more: bool,
}

/// Payments, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "payments",
    params(ListQuery),
    responses(
        (status = 200, body = PaymentList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_payments(
    State(s): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentList>, Problem> {
    authorize(&s, &headers, false).await?;
    let Query(q) = query.map_err(|e| Problem::field("query", e.body_text()))?;
    let mut errors = Vec::new();
    let mut f = PageFilter {
        limit: 20,
        ..Default::default()
    };
    if let Some(st) = &q.status {
        match st.parse::<Status>() {
            Ok(st) => f.status = Some(st),
            Err(e) => errors.push(FieldError {
                field: "status".into(),
                reason: e.to_string(),
            }),
        }
    }
    if let Some(o) = &q.order_id {
        f.order_id = Some(o.clone());
    }
    for (name, value, slot) in [
        ("created_after", &q.created_after, &mut f.created_after_ms),
        (
            "created_before",
            &q.created_before,
            &mut f.created_before_ms,
        ),
    ] {
        if let Some(v) = value {
            match DateTime::parse_from_rfc3339(v) {
                Ok(t) => *slot = Some(t.timestamp_millis()),
                Err(e) => errors.push(FieldError {
                    field: name.into(),
                    reason: format!("{v:?} is not RFC 3339: {e}"),
                }),
            }
        }
    }
    if let Some(l) = &q.limit {
        match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => f.limit = n,
            _ => errors.push(FieldError {
                field: "limit".into(),
                reason: format!("{l:?}: 1 to 100"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if let Some(after) = &q.starting_after {
        let row = match public_id(after) {
            Ok(p) => s.store.payment_by_public_id(p).await?,
            Err(_) => None,
        };
        let Some(row) = row else {
            return Err(Problem::field(
                "starting_after",
                format!("no payment {after:?}"),
            ));
        };
        f.before_id = Some(row.id.0);
    }
    let want = f.limit;
    f.limit = want + 1;
    let mut rows = s.store.list_page(&f).await?;
    let has_more = rows.len() as i64 > want;
    rows.truncate(want as usize);
    Ok(Json(PaymentList {
        data: rows
            .into_iter()
            .map(|r| PaymentObject::of(r, &s.settings))
            .collect(),
        has_more,
    }))
}

/// Cancel a pending payment: it becomes `cancelled` (and stays watched for
/// late money; the customer may still pay the QR shown).
#[utoipa::path(
    post,
    path = "/v1/payments/{id}/cancel",
    tag = "payments",
    params(("id" = String, Path, description = "The payment's public id")),
    responses(
        (status = 200, description = "Cancelled", body = PaymentObject),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already final", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn cancel_payment(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PaymentObject>, Problem> {
    let key = authorize(&s, &headers, true).await?;
    let target = Target::PublicId(public_id(&id)?.to_string());
    match s.store.cancel(&target, Utc::now()).await? {
        CancelOutcome::Cancelled(_) => {
            info!(key = %key.id, payment = %id, "api: payment cancelled");
            Ok(Json(PaymentObject::of(find(&s, &id).await?, &s.settings)))
        }
        CancelOutcome::Final(rows) => {
            let status = rows.first().map_or("final", |(_, st)| st.as_str());
            Err(Problem::new(
                StatusCode::CONFLICT,
                "already-final",
                "The payment is already final",
                format!("payment {id} is {status}: only a pending payment can be cancelled"),
            ))
        }
        CancelOutcome::Unknown => Err(Problem::not_found(format!("no payment {id}"))),
    }
}

async fn qr_of(s: &ApiState, headers: &HeaderMap, id: &str) -> Result<String, Problem> {
    authorize(s, headers, false).await?;
    find(s, id).await?.qr.ok_or_else(|| {
        Problem::not_found(format!(
            "payment {id} has no QR kept (it was inserted without the qr column)"
        ))
    })
}

fn image(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

fn render_failed(e: crate::khqr::render::RenderError) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "render-failed",
        "The QR image could not be made",
        e.to_string(),
    )
}

/// The payment's KHQR as an SVG image.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}/qr.svg",
    tag = "payments",
    params(("id" = String, Path, description = "The payment's public id")),
    responses(
        (status = 200, description = "The QR", content_type = "image/svg+xml", body = String),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn qr_svg(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let qr = qr_of(&s, &headers, &id).await?;
    let svg = crate::khqr::render::svg(&qr).map_err(render_failed)?;
    Ok(image("image/svg+xml", svg.into_bytes()))
}

/// The payment's KHQR as a PNG image.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}/qr.png",
    tag = "payments",
    params(("id" = String, Path, description = "The payment's public id")),
    responses(
        (status = 200, description = "The QR", content_type = "image/png", body = Vec<u8>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn qr_png(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let qr = qr_of(&s, &headers, &id).await?;
    let png = crate::khqr::render::png(&qr, 8).map_err(render_failed)?;
    Ok(image("image/png", png))
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of the API", content_type = "application/json", body = Object))
)]
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key made by `bakong-poller api-key create`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bakong-poller API",
        description = "Open, read, list and cancel Bakong (KHQR) payments confirmed by bakong-poller. Amounts are decimal strings, times RFC 3339 UTC, errors application/problem+json (RFC 9457).",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(create_payment, get_payment, list_payments, cancel_payment, qr_svg, qr_png, openapi),
    components(schemas(PaymentObject, PaymentList, CreatePayment, Problem, FieldError)),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Payments"), (name = "meta", description = "This document"))
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
}
