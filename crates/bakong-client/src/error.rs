//! The client's one error type.

use std::time::Duration;

/// Everything a Bakong call can end in other than success.
///
/// An error is never a "not found": only [`Error::NotFound`] means that
/// Bakong answered that the transaction does not exist.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request argument broke the spec's rules; nothing was sent.
    #[error("invalid {field}: {rule}")]
    InvalidArgument {
        /// The request field, as the spec names it.
        field: &'static str,
        /// The rule it broke and the value seen.
        rule: String,
    },
    /// errorCode 1: Bakong has no such transaction (yet).
    #[error("transaction not found: {message}")]
    NotFound {
        /// Bakong's message.
        message: String,
    },
    /// errorCode 3: the transaction failed.
    #[error("transaction failed: {message}")]
    TransactionFailed {
        /// Bakong's message.
        message: String,
    },
    /// errorCode 2: static QR codes (no amount) cannot be tracked.
    #[error("static QR codes are not supported: {message}")]
    StaticQr {
        /// Bakong's message.
        message: String,
    },
    /// HTTP 401 or errorCode 6: the token is expired, revoked or unknown.
    #[error("unauthorized: the access token was refused ({detail}); renew it with `bakong-poller token renew` or set bakong.token")]
    Unauthorized {
        /// What the server said, without the token.
        detail: String,
    },
    /// HTTP 429.
    #[error("rate limited by Bakong (HTTP 429){}", match .retry_after { Some(d) => format!(", Retry-After {}", humantime::format_duration(*d)), None => String::new() })]
    RateLimited {
        /// The wait the server asked for, if it said one.
        retry_after: Option<Duration>,
    },
    /// errorCode 17 (or a 429 that speaks of a daily limit): the token's
    /// daily request quota is spent; every request waits for it to reset.
    #[error("daily request quota exhausted: {message}")]
    Quota {
        /// Bakong's message, or why the request was held back.
        message: String,
    },
    /// `poller.daily_request_budget` is spent for today (UTC): the request
    /// was not sent.
    #[error("poller.daily_request_budget of {budget} requests is spent for today (UTC); checks resume after midnight UTC")]
    BudgetSpent {
        /// The configured budget.
        budget: u64,
    },
    /// HTTP 403, usually an HTML page from the gateway.
    #[error("HTTP 403 from {endpoint}: Bakong refuses clients outside Cambodia (geo-block), or this endpoint is closed to this token; run from a Cambodian network or set bakong.proxy (or HTTPS_PROXY) to a proxy in Cambodia, and ask NBC about the token's access if single lookups work but this endpoint does not")]
    Forbidden {
        /// The endpoint that refused.
        endpoint: &'static str,
    },
    /// Every endpoint answers HTTP 403, single lookups included: the API
    /// refuses this network.
    #[error("HTTP 403 from every endpoint, also after renewing the token once: Bakong refuses this network (clients outside Cambodia, or this host's network at its CDN) or refuses the token (revoked, e.g. by a renewal on another deployment with the same bakong.email); `bakong-poller token renew` tells them apart (a 403 there too: the network; run from a Cambodian network or set bakong.proxy or HTTPS_PROXY to a proxy in Cambodia; it renews: the token was refused; restart the daemon to use the new one)")]
    GeoBlocked,
    /// The list endpoint answers 403 while single lookups work with the
    /// same token: it is closed to this token.
    #[error("HTTP 403 from {endpoint} while single lookups work with the same token: the list endpoint is closed to this token (ask NBC to open it); single lookups are used meanwhile")]
    ListClosed {
        /// The list endpoint.
        endpoint: &'static str,
    },
    /// HTTP 404: the endpoint does not exist at this base URL.
    #[error("HTTP 404 from {endpoint}: the endpoint does not exist at this base URL (check bakong.base_url)")]
    EndpointNotFound {
        /// The endpoint that is missing.
        endpoint: &'static str,
    },
    /// Any other error code from the spec's table.
    #[error("Bakong error {code}: {message}")]
    Api {
        /// errorCode.
        code: i64,
        /// responseMessage, or the spec's text for the code.
        message: String,
    },
    /// A non-2xx answer not covered above.
    #[error("HTTP {status} from {endpoint}: {excerpt}")]
    Http {
        /// The endpoint called.
        endpoint: &'static str,
        /// HTTP status code.
        status: u16,
        /// The start of the body.
        excerpt: String,
    },
    /// The request timed out (bakong.timeout).
    #[error("timed out calling {endpoint} after {}", humantime::format_duration(*.after))]
    Timeout {
        /// The endpoint called.
        endpoint: &'static str,
        /// The configured timeout.
        after: Duration,
    },
    /// Connection, TLS or proxy failure.
    #[error("could not reach {endpoint}: {detail}")]
    Transport {
        /// The endpoint called.
        endpoint: &'static str,
        /// The transport error chain.
        detail: String,
    },
    /// A 2xx answer that is not the documented JSON.
    #[error("unreadable answer from {endpoint}: {detail} (body starts {excerpt:?})")]
    Decode {
        /// The endpoint called.
        endpoint: &'static str,
        /// What was wrong.
        detail: String,
        /// The start of the body.
        excerpt: String,
    },
    /// No token is configured for an endpoint that needs one.
    #[error("no access token: set bakong.token, put one in bakong.token_file, or run `bakong-poller token verify`")]
    NoToken,
    /// Renewing the token, or saving it, failed.
    #[error("token renewal failed: {0}")]
    Renewal(String),
}

impl Error {
    /// Whether the error says an endpoint is closed or missing (HTTP 403 or
    /// 404), so a caller can fall back to another endpoint.
    pub fn endpoint_closed(&self) -> bool {
        matches!(
            self,
            Error::Forbidden { .. } | Error::ListClosed { .. } | Error::EndpointNotFound { .. }
        )
    }

    /// Whether the request was refused (or held back) by the daily quota or
    /// the daily budget: about the token, never about a payment.
    pub fn is_quota(&self) -> bool {
        matches!(self, Error::Quota { .. } | Error::BudgetSpent { .. })
    }

    /// Whether this is Bakong's answer about the transaction (not found,
    /// failed, static QR) rather than a failure to get one.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::TransactionFailed { .. } | Error::StaticQr { .. }
        )
    }

    /// A short stable name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::NotFound { .. } => "not_found",
            Error::TransactionFailed { .. } => "transaction_failed",
            Error::StaticQr { .. } => "static_qr",
            Error::Unauthorized { .. } => "unauthorized",
            Error::RateLimited { .. } => "rate_limited",
            Error::Quota { .. } => "quota",
            Error::BudgetSpent { .. } => "budget",
            Error::Forbidden { .. } => "forbidden",
            Error::GeoBlocked => "geo_blocked",
            Error::ListClosed { .. } => "list_closed",
            Error::EndpointNotFound { .. } => "endpoint_not_found",
            Error::Api { .. } => "api",
            Error::Http { .. } => "http",
            Error::Timeout { .. } => "timeout",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::NoToken => "no_token",
            Error::Renewal(_) => "renewal",
        }
    }
}

/// The spec's text for an error code.
pub fn error_code_text(code: i64) -> &'static str {
    match code {
        1 => "Transaction could not be found. Please try again.",
        2 => "Sorry, the system does not support static QR code.",
        3 => "Transaction failed.",
        4 => "Error occurred on requesting deeplink from provider.",
        5 => "Missing required fields.",
        6 => "Unauthorized.",
        7 => "Email server has been down.",
        8 => "Email has been registered already.",
        9 => "Cannot connect to server. Please try again later.",
        10 => "Not registered yet.",
        11 => "Account ID not found.",
        12 => "Account ID is invalid.",
        17 => "Daily request limit exceeded. Please try again tomorrow.",
        _ => "Unknown error code.",
    }
}

/// The first bytes of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    crate::redact::redact_text(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}
