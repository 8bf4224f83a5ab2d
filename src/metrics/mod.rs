//! The operator's view over HTTP: Prometheus metrics at `GET /metrics` and a
//! health check at `GET /healthz`, served on `[metrics] listen` when it is
//! set. Unset, nothing listens and nothing here is created.
//!
//! Two kinds of figures. What happens at one moment (a request and its
//! outcome and latency, a confirmation's latency, a bulk request's size)
//! is counted as it happens, in the instruments of [`Instruments`], which
//! the client and the recorder hold only when metrics are on. What is a
//! state (pending rows, the gate's rate, the token's expiry, counters the
//! daemon keeps anyway) is read when Prometheus scrapes, by a collector in
//! [`server`], so it costs nothing between scrapes. Labels are bounded:
//! endpoints, outcomes and statuses, never an md5 or a URL.
//!
//! `prometheus-client` (the Prometheus project's Rust client) formats the
//! text, so the names, `_total` suffixes, escaping and histogram series
//! follow the exposition format without hand-written formatting.

pub mod server;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::bakong::{Envelope, Error};

pub use crate::counters::{Health, Unhealthy};

/// The prefix of every metric name.
pub const PREFIX: &str = "bakong_poller";

/// Every value of the `outcome` label of `bakong_poller_api_requests_total`.
pub const OUTCOMES: [&str; 13] = [
    "ok",
    "not_found",
    "failed",
    "error_code",
    "unauthorized",
    "forbidden",
    "endpoint_missing",
    "rate_limited",
    "server_error",
    "http_error",
    "timeout",
    "transport",
    "decode",
];

/// Request latency buckets (seconds): Bakong answers in tens to hundreds of
/// milliseconds; the top ones catch the per-request timeout (15 s default).
const REQUEST_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

/// Confirmation latency buckets (seconds): paid -> confirmed is seconds,
/// created -> confirmed is as long as a customer takes to pay (minutes).
const CONFIRMATION_BUCKETS: [f64; 14] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
];

/// md5s per list request: 1 to 50.
const BULK_BUCKETS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0];

/// The outcome label of one request's result, as [`crate::bakong::Client`]
/// saw it before any endpoint-specific reading: a 2xx (or 4xx) envelope is
/// `ok` or its error code's outcome; an error is sorted by its kind.
pub fn outcome(result: &Result<Envelope, Error>) -> &'static str {
    match result {
        Ok(env) if env.response_code == 0 => "ok",
        Ok(env) => match env.error_code {
            Some(1) => "not_found",
            Some(3) => "failed",
            _ => "error_code",
        },
        Err(e) => match e {
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } | Error::GeoBlocked | Error::ListClosed { .. } => "forbidden",
            Error::EndpointNotFound { .. } => "endpoint_missing",
            Error::RateLimited { .. } => "rate_limited",
            Error::Http { status, .. } if *status >= 500 => "server_error",
            Error::Timeout { .. } => "timeout",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::NotFound { .. } => "not_found",
            Error::TransactionFailed { .. } => "failed",
            _ => "http_error",
        },
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FromLabel {
    from: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// HTTP API answer latency buckets (seconds).
const HTTP_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// What the HTTP API (`[api] listen`) counts per request: by route
/// template (never an id) and status class. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpInstruments {
    requests: Family<HttpLabels, Counter>,
    seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

impl HttpInstruments {
    /// Counts one answer of `route` with `status`, which took `took`.
    pub fn observe(&self, route: &str, status: u16, took: Duration) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                class,
            })
            .inc();
        self.seconds
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn confirmation_histogram() -> Histogram {
    Histogram::new(CONFIRMATION_BUCKETS)
}

/// What the API client counts per request. Cheap to clone (shared inside).
#[derive(Debug, Clone)]
pub struct ApiInstruments {
    requests: Family<RequestLabels, Counter>,
    seconds: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    bulk_md5s: Histogram,
}

impl crate::bakong::RequestObserver for ApiInstruments {
    /// Counts one request that left the gate: its outcome and how long the
    /// exchange took (a timeout counts its full wait).
    fn request(&self, endpoint: &'static str, result: &Result<Envelope, Error>, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                outcome: outcome(result),
            })
            .inc();
        self.seconds
            .get_or_create(&EndpointLabel { endpoint })
            .observe(took.as_secs_f64());
    }

    /// Records how many md5s one list request carries.
    fn bulk_request(&self, md5s: usize) {
        self.bulk_md5s.observe(md5s as f64);
    }
}

/// What the recorder counts per confirmation.
#[derive(Debug, Clone)]
pub struct PaymentInstruments {
    confirmation: Family<FromLabel, Histogram, fn() -> Histogram>,
}

impl crate::counters::Confirmations for PaymentInstruments {
    /// Records a payment Bakong reported a transaction for (paid or
    /// mismatch), written at `now_ms`: seconds since the row was created
    /// and, when Bakong said when, since the payer paid. A clock ahead of
    /// ours never makes a negative observation.
    fn confirmed(&self, now_ms: i64, created_ms: i64, paid_ms: Option<i64>) {
        let secs = |from: i64| (now_ms.saturating_sub(from)).max(0) as f64 / 1000.0;
        self.confirmation
            .get_or_create(&FromLabel { from: "created" })
            .observe(secs(created_ms));
        if let Some(p) = paid_ms {
            self.confirmation
                .get_or_create(&FromLabel { from: "paid" })
                .observe(secs(p));
        }
    }
}

/// The event-time instruments, registered under [`PREFIX`].
#[derive(Debug)]
pub struct Instruments {
    /// For the API client.
    pub api: ApiInstruments,
    /// For the recorder.
    pub payments: PaymentInstruments,
    /// For the HTTP API.
    pub http: HttpInstruments,
    registry: Registry,
}

impl Default for Instruments {
    fn default() -> Self {
        Self::new()
    }
}

impl Instruments {
    /// Creates and registers the instruments. Series that may stay at zero
    /// for long (the confirmation histograms) exist from the start, so a
    /// dashboard shows 0 rather than "no data".
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let api = ApiInstruments {
            requests: Family::default(),
            seconds: Family::new_with_constructor(request_histogram as fn() -> Histogram),
            bulk_md5s: Histogram::new(BULK_BUCKETS),
        };
        let payments = PaymentInstruments {
            confirmation: Family::new_with_constructor(confirmation_histogram as fn() -> Histogram),
        };
        for from in ["created", "paid"] {
            drop(payments.confirmation.get_or_create(&FromLabel { from }));
        }
        registry.register(
            "api_requests",
            "Bakong API requests by endpoint and outcome (ok, not_found, failed, error_code, unauthorized = 401 or errorCode 6, forbidden = 403, endpoint_missing = 404, rate_limited = 429, server_error = 5xx, http_error, timeout, transport, decode)",
            api.requests.clone(),
        );
        registry.register(
            "api_request_seconds",
            "Time from a request leaving the gate to its answer (or its failure), by endpoint",
            api.seconds.clone(),
        );
        registry.register(
            "bulk_request_md5s",
            "md5s carried by one check_transaction_by_md5_list request",
            api.bulk_md5s.clone(),
        );
        registry.register(
            "confirmation_seconds",
            "Time to confirm a payment Bakong reports (paid or mismatch): from=created since the row was inserted, from=paid since the payer paid (createdDateMs)",
            payments.confirmation.clone(),
        );
        let http = HttpInstruments {
            requests: Family::default(),
            seconds: Family::new_with_constructor(http_histogram as fn() -> Histogram),
        };
        registry.register(
            "http_requests",
            "Requests to the HTTP API ([api] listen) by route and status class (2xx, 4xx, 5xx)",
            http.requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time to answer a request to the HTTP API, by route",
            http.seconds.clone(),
        );
        Instruments {
            api,
            payments,
            http,
            registry,
        }
    }

    /// The registry, for the server to add its collector to.
    pub fn into_registry(self) -> Registry {
        self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Confirmations as _;
    use serde_json::Value;

    fn env(code: i64, error: Option<i64>) -> Result<Envelope, Error> {
        Ok(Envelope {
            response_code: code,
            response_message: None,
            error_code: error,
            data: Value::Null,
            raw_data: None,
        })
    }

    #[test]
    fn outcomes_sort_answers_and_errors_into_bounded_labels() {
        assert_eq!(outcome(&env(0, None)), "ok");
        assert_eq!(outcome(&env(1, Some(1))), "not_found");
        assert_eq!(outcome(&env(1, Some(3))), "failed");
        assert_eq!(outcome(&env(1, Some(11))), "error_code");
        let cases = [
            (Error::RateLimited { retry_after: None }, "rate_limited"),
            (
                Error::Unauthorized {
                    detail: String::new(),
                },
                "unauthorized",
            ),
            (Error::Forbidden { endpoint: "x" }, "forbidden"),
            (
                Error::EndpointNotFound { endpoint: "x" },
                "endpoint_missing",
            ),
            (
                Error::Http {
                    endpoint: "x",
                    status: 502,
                    excerpt: String::new(),
                },
                "server_error",
            ),
            (
                Error::Http {
                    endpoint: "x",
                    status: 418,
                    excerpt: String::new(),
                },
                "http_error",
            ),
            (
                Error::Timeout {
                    endpoint: "x",
                    after: Duration::from_secs(1),
                },
                "timeout",
            ),
            (
                Error::Transport {
                    endpoint: "x",
                    detail: String::new(),
                },
                "transport",
            ),
            (
                Error::Decode {
                    endpoint: "x",
                    detail: String::new(),
                    excerpt: String::new(),
                },
                "decode",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(outcome(&Err(e)), want);
            assert!(OUTCOMES.contains(&want));
        }
    }

    #[test]
    fn a_confirmation_from_a_clock_ahead_of_ours_observes_zero() {
        let i = Instruments::new();
        i.payments.confirmed(1_000, 500, Some(2_000));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &i.into_registry())
            .expect("encodes");
        assert!(
            text.contains("bakong_poller_confirmation_seconds_sum{from=\"paid\"} 0.0\n"),
            "{text}"
        );
        assert!(
            text.contains("bakong_poller_confirmation_seconds_sum{from=\"created\"} 0.5\n"),
            "{text}"
        );
    }
}
