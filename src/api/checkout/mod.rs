//! The checkout page a customer sees: `GET /pay/{id}` (the public id is
//! the secret; no key), the KHQR with the merchant's name and the amount,
//! a countdown, and the live status without reloading (a server-sent event
//! stream, `GET /pay/{id}/events`, with a polling fallback,
//! `GET /pay/{id}/status.json`). Khmer and English. Self-contained: its
//! CSS and script come from this listener, the QR is drawn here, and a
//! strict Content-Security-Policy keeps every request on this origin.
//!
//! The stream reads the row from the database (every 400 ms while it is
//! open), so every daemon of a fleet serves it and a status written by any
//! of them shows within a second.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{ApiState, PaymentObject};
use crate::store::PaymentRow;

const CSS: &str = include_str!("checkout.css");
const JS: &str = include_str!("checkout.js");

/// The page's Content-Security-Policy: nothing from another origin, no
/// inline script or style; embedding in a shop's page is allowed.
pub const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'";

/// How often an open event stream reads its payment.
const STREAM_EVERY: Duration = Duration::from_millis(400);

/// The page's routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/pay/assets/checkout.css", get(css))
        .route("/pay/assets/checkout.js", get(js))
        .route("/pay/assets/icon.svg", get(icon))
        .route("/pay/{id}", get(page))
        .route("/pay/{id}/events", get(events))
        .route("/pay/{id}/status.json", get(status_json))
        .route("/pay/{id}/qr.svg", get(qr_svg))
}

/// The texts of one language.
#[derive(Debug, Clone, Serialize)]
struct Texts {
    lang: &'static str,
    title: &'static str,
    scan: &'static str,
    pending: &'static str,
    paid: &'static str,
    paid_late: &'static str,
    mismatch: &'static str,
    expired: &'static str,
    cancelled: &'static str,
    failed: &'static str,
    expires_in: &'static str,
    returning: &'static str,
    qr_alt: &'static str,
    not_found: &'static str,
    open_app: &'static str,
}

const EN: Texts = Texts {
    lang: "en",
    title: "Pay with KHQR",
    scan: "Scan with any bank app that supports KHQR",
    pending: "Waiting for your payment…",
    paid: "Paid. Thank you!",
    paid_late: "Payment received after the QR expired. The shop will confirm your order.",
    mismatch: "We received {paid}, but {expected} was expected. The shop will contact you.",
    expired: "This QR has expired. Ask the shop for a new one.",
    cancelled: "This payment was cancelled by the shop. Do not pay this QR.",
    failed: "The payment failed. Ask the shop for a new QR.",
    expires_in: "Expires in",
    returning: "Returning to the shop…",
    qr_alt: "KHQR code to pay",
    not_found: "This payment does not exist.",
    open_app: "Open in bank app",
};

const KM: Texts = Texts {
    lang: "km",
    title: "បង់ប្រាក់ជាមួយ KHQR",
    scan: "ស្កេនដោយកម្មវិធីធនាគារណាមួយដែលគាំទ្រ KHQR",
    pending: "កំពុងរង់ចាំការបង់ប្រាក់របស់អ្នក…",
    paid: "បានបង់ប្រាក់។ សូមអរគុណ!",
    paid_late: "បានទទួលប្រាក់ក្រោយពេល QR ផុតកំណត់។ ហាងនឹងបញ្ជាក់ការកម្ម៉ង់របស់អ្នក។",
    mismatch: "យើងបានទទួល {paid} ប៉ុន្តែត្រូវបង់ {expected}។ ហាងនឹងទាក់ទងអ្នក។",
    expired: "QR នេះបានផុតកំណត់ហើយ។ សូមសុំ QR ថ្មីពីហាង។",
    cancelled: "ការបង់ប្រាក់នេះត្រូវបានហាងលុបចោល។ សូមកុំបង់តាម QR នេះ។",
    failed: "ការបង់ប្រាក់បរាជ័យ។ សូមសុំ QR ថ្មីពីហាង។",
    expires_in: "ផុតកំណត់ក្នុងរយៈពេល",
    returning: "កំពុងត្រឡប់ទៅហាងវិញ…",
    qr_alt: "កូដ KHQR សម្រាប់បង់ប្រាក់",
    not_found: "មិនមានការបង់ប្រាក់នេះទេ។",
    open_app: "បើកក្នុងកម្មវិធីធនាគារ",
};

/// `?lang=` on the page.
#[derive(Debug, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The language: `?lang=` first, then the browser's `Accept-Language`
/// (the first of km and en it names), then `[api] default_language`.
fn language(q: Option<&str>, headers: &HeaderMap, default: &str) -> &'static Texts {
    let pick = |l: &str| match l {
        "km" => Some(&KM),
        "en" => Some(&EN),
        _ => None,
    };
    if let Some(t) = q.and_then(pick) {
        return t;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for part in accept.split(',') {
        let tag = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(t) = pick(primary) {
            return t;
        }
    }
    pick(default).unwrap_or(&KM)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A plain 404 page: no payment data, no detail.
fn missing(t: &Texts) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>404</title><link rel=\"stylesheet\" href=\"/pay/assets/checkout.css\"></head>\
         <body><main class=\"card\"><div class=\"khqr-head\">KHQR</div>\
         <p class=\"missing\">{}</p></main></body></html>",
        t.lang,
        escape(t.not_found)
    );
    secure(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
    )
}

async fn row_of(s: &ApiState, id: &str) -> Option<PaymentRow> {
    let id = super::public_id(id).ok()?;
    s.store.payment_by_public_id(id).await.ok().flatten()
}

/// What the page shows of a payment (no payer details, no md5).
#[derive(Debug, Serialize)]
struct PageStatus {
    status: String,
    amount: String,
    currency: String,
    paid_amount: Option<String>,
    paid_currency: Option<String>,
    paid_at: Option<String>,
    expires_at: Option<String>,
}

impl From<PaymentObject> for PageStatus {
    fn from(p: PaymentObject) -> Self {
        PageStatus {
            status: p.status,
            amount: p.amount,
            currency: p.currency,
            paid_amount: p.paid_amount,
            paid_currency: p.paid_currency,
            paid_at: p.paid_at.or(p.confirmed_at),
            expires_at: p.expires_at,
        }
    }
}

async fn page(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let t = language(
        q.lang.as_deref(),
        &headers,
        &s.settings.api.default_language,
    );
    let Some(row) = row_of(&s, &id).await else {
        return missing(t);
    };
    let merchant = row
        .qr
        .as_deref()
        .and_then(|qr| crate::khqr::decode(qr).ok())
        .and_then(|k| k.merchant_name)
        .unwrap_or_default();
    let has_qr = row.qr.is_some();
    // "Open in bank app", for a customer paying on this phone, while the
    // payment waits and Bakong gave a deeplink.
    let open_app = match row.deeplink.as_deref() {
        Some(d) if row.status == crate::payment::Status::Pending && d.starts_with("https://") => {
            format!(
                "<p><a class=\"open-app\" href=\"{}\" rel=\"noreferrer\">{}</a></p>",
                escape(d),
                escape(t.open_app)
            )
        }
        _ => String::new(),
    };
    let p = PaymentObject::of(row, &s.settings);
    let status = p.status.clone();
    let text = |st: &str| match st {
        "paid" => t.paid,
        "paid_late" => t.paid_late,
        "mismatch" => t.mismatch,
        "expired" => t.expired,
        "cancelled" => t.cancelled,
        "failed" => t.failed,
        _ => t.pending,
    };
    let state = text(&status)
        .replace(
            "{paid}",
            &format!(
                "{} {}",
                p.paid_amount.as_deref().unwrap_or(""),
                p.paid_currency.as_deref().unwrap_or("")
            ),
        )
        .replace("{expected}", &format!("{} {}", p.amount, p.currency));
    let i18n = serde_json::to_string(t)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c");
    let other = |l: &str, name: &str| {
        format!(
            "<a href=\"?lang={l}\" hreflang=\"{l}\" lang=\"{l}\"{}>{name}</a>",
            if t.lang == l {
                " aria-current=\"true\""
            } else {
                ""
            }
        )
    };
    let qr = if has_qr {
        format!(
            "<div class=\"qr\"><img src=\"/pay/{id}/qr.svg\" width=\"280\" height=\"280\" alt=\"{} {} {}{}\"></div>",
            escape(t.qr_alt),
            escape(&p.amount),
            escape(&p.currency),
            if merchant.is_empty() {
                String::new()
            } else {
                format!(" — {}", escape(&merchant))
            },
            id = escape(&p.id),
        )
    } else {
        String::new()
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\" data-status=\"{status}\" data-id=\"{id}\" \
         data-expires=\"{expires}\" data-redirect=\"{redirect}\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/pay/assets/checkout.css\"></head>\n\
         <body><main class=\"card\">\
         <div class=\"khqr-head\" aria-hidden=\"true\">KHQR</div>\
         <div class=\"body\"><h1 class=\"merchant\">{merchant}</h1>\
         <p class=\"amount\">{amount} {currency}</p>{qr}{open_app}\
         <div class=\"check\" aria-hidden=\"true\">✓</div>\
         <p class=\"state\" id=\"state\" role=\"status\" aria-live=\"polite\">{state}</p>\
         <p class=\"countdown\" id=\"countdown\"></p><p class=\"paid-at\" id=\"paid-at\"></p><p class=\"countdown\">{scan}</p>\
         <nav class=\"lang\" aria-label=\"Language\">{km} {en}</nav></div></main>\n\
         <script type=\"application/json\" id=\"i18n\">{i18n}</script>\
         <script src=\"/pay/assets/checkout.js\"></script></body></html>\n",
        lang = t.lang,
        status = escape(&status),
        id = escape(&p.id),
        expires = escape(p.expires_at.as_deref().unwrap_or("")),
        redirect = escape(p.redirect_url.as_deref().unwrap_or("")),
        title = escape(t.title),
        merchant = escape(&merchant),
        amount = escape(&p.amount),
        currency = escape(&p.currency),
        state = escape(&state),
        scan = escape(t.scan),
        open_app = open_app,
        km = other("km", "ខ្មែរ"),
        en = other("en", "English"),
    );
    secure(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn status_json(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match row_of(&s, &id).await {
        Some(row) => secure(
            axum::Json(PageStatus::from(PaymentObject::of(row, &s.settings))).into_response(),
        ),
        None => secure((StatusCode::NOT_FOUND, "not found\n").into_response()),
    }
}

/// The event stream: the status at once, then each change; it ends once
/// the status is final (a reconnecting browser gets the final one again).
async fn events(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    if row_of(&s, &id).await.is_none() {
        return secure((StatusCode::NOT_FOUND, "not found\n").into_response());
    }
    let stream = futures_util::stream::unfold(
        (s, id, None::<String>, false),
        |(s, id, last, done)| async move {
            if done {
                return None;
            }
            let mut first = last.is_none();
            loop {
                if !first {
                    tokio::time::sleep(STREAM_EVERY).await;
                }
                first = false;
                let row = row_of(&s, &id).await?;
                let p = PageStatus::from(PaymentObject::of(row, &s.settings));
                if last.as_deref() == Some(p.status.as_str()) {
                    continue;
                }
                let fin = p.status != "pending";
                let data = serde_json::to_string(&p).unwrap_or_else(|_| "{}".into());
                let ev = Event::default().event("status").data(data);
                return Some((
                    Ok::<Event, std::convert::Infallible>(ev),
                    (s, id, Some(p.status), fin),
                ));
            }
        },
    );
    secure(
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
            .into_response(),
    )
}

async fn qr_svg(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(qr) = row_of(&s, &id).await.and_then(|r| r.qr) else {
        return secure((StatusCode::NOT_FOUND, "not found\n").into_response());
    };
    match crate::khqr::render::svg(&qr) {
        Ok(svg) => secure(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()),
        Err(_) => secure((StatusCode::INTERNAL_SERVER_ERROR, "no image\n").into_response()),
    }
}

/// The icon Bakong's deeplink page shows for this shop.
async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\"><rect width=\"64\" height=\"64\" rx=\"12\" fill=\"#e1232e\"/><text x=\"32\" y=\"40\" font-family=\"sans-serif\" font-size=\"18\" font-weight=\"700\" fill=\"#fff\" text-anchor=\"middle\">KHQR</text></svg>",
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

/// The page's weight: HTML aside, what a first visit downloads.
pub fn asset_bytes() -> usize {
    CSS.len() + JS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_query_then_the_browser_then_the_default() {
        let mut h = HeaderMap::new();
        assert_eq!(language(None, &h, "km").lang, "km");
        assert_eq!(language(None, &h, "en").lang, "en");
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("fr-FR, en-US;q=0.8, km;q=0.5"),
        );
        assert_eq!(language(None, &h, "km").lang, "en");
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("km-KH"));
        assert_eq!(language(None, &h, "en").lang, "km");
        assert_eq!(language(Some("en"), &h, "km").lang, "en");
        assert_eq!(language(Some("xx"), &h, "en").lang, "km");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
