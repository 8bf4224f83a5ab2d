//! The Bakong Open API client: every endpoint as a typed function, one
//! request gate, one token manager.
//!
//! One private function (`Client::send`) waits at the gate, takes the
//! token from the [`TokenManager`] only then (so a request that waited
//! through a renewal leaves with the new token), sends, and sorts the
//! answer: 2xx envelopes, 401, 403, 404, 429, 5xx and unreadable bodies each
//! become their own [`Error`]. `Client::call` asks the manager to refresh
//! when a request with generation `g` is refused, and retries once.
//!
//! A crate of its own, usable without the bakong-poller daemon: the daemon
//! counts its requests through a [`RequestObserver`] it installs, and shares the
//! gate's state between processes through its store ([`gate`] takes that
//! state as plain values). [`redact`] keeps credentials out of every
//! message that echoes a URL or a server's text.
#![forbid(unsafe_code)]

mod error;
pub mod gate;
pub mod quota;
pub mod redact;
pub mod token;
pub mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};

pub use error::{error_code_text, Error};
pub use gate::{Gate, GateConfig, RetryAfter};
pub use quota::{Pause, Quota, Spend};
pub use token::{
    Candidate, Claims, FileKeep, Token, TokenChoice, TokenConfig, TokenKeep, TokenManager,
    TokenSource,
};
pub use types::{Envelope, ListStatus, RequestTokenBody, SourceInfo, Transaction};

use bakong_khqr::money::Currency;

/// What the client reports about its requests, for whoever counts them
/// (the daemon's Prometheus instruments). The client knows only this
/// trait, as it knows its gate through [`gate::GateShare`] and its token
/// store through [`TokenKeep`].
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// One request left the gate: its answer and how long the exchange took
    /// (a timeout counts its full wait).
    fn request(&self, endpoint: &'static str, result: &Result<Envelope, Error>, took: Duration);

    /// A list request carries `md5s` md5s.
    fn bulk_request(&self, _md5s: usize) {}
}

/// Production base URL.
pub const PRODUCTION_URL: &str = "https://api-bakong.nbc.gov.kh";
/// The largest list the list endpoints take.
pub const MAX_LIST: usize = 50;
const MAX_BODY: usize = 4 << 20;

/// How to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base, without `/v1`.
    pub base_url: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// An HTTPS proxy for all requests (HTTPS_PROXY is honoured too).
    pub proxy: Option<String>,
    /// The request gate's settings.
    pub gate: GateConfig,
}

/// Whether a request carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Never (request_token, verify, renew_token).
    None,
    /// When there is one (check_bakong_account and generate_deeplink_by_qr
    /// answer without a token on the live service).
    Optional,
    /// Always; no token is [`Error::NoToken`].
    Required,
}

/// One answer per md5 of a batch, in the order asked, each shaped as a
/// single lookup's answer.
pub type BatchAnswers = Vec<Result<Transaction, Error>>;

/// The Bakong API client. Cheap to clone; clones share the gate and token.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    gate: Gate,
    /// The daily quota's pause and the daily budget.
    quota: Quota,
    tokens: Arc<TokenManager>,
    /// Unix ms of the last answer that was not an error of transport,
    /// HTTP status or decoding.
    last_success_ms: AtomicI64,
    /// Milliseconds per answered request since the last `take_latencies`.
    latencies: std::sync::Mutex<Vec<u32>>,
    /// The list endpoint was found closed to the token of this generation,
    /// until this instant: its 403s need no new probe meanwhile.
    list_closed: std::sync::Mutex<Option<(u64, tokio::time::Instant)>>,
    /// When a 403 last led to a renewal (at most one per
    /// [`FORBIDDEN_RENEW_EVERY`]).
    forbidden_renewal: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Per-request counters, only when `[metrics] listen` is set.
    instruments: std::sync::OnceLock<Arc<dyn RequestObserver>>,
}

/// How long a list found closed to a token is taken as closed without a
/// new probe (a token refused later is still found by the next probe).
const LIST_CLOSED_MEMORY: Duration = Duration::from_secs(300);

/// At most one renewal per this long to tell a refused token from a
/// geo-block after a 403.
pub const FORBIDDEN_RENEW_EVERY: Duration = Duration::from_secs(300);

/// How many latency samples are kept between two reads.
const MAX_SAMPLES: usize = 10_000;

fn check_len(field: &'static str, v: &str, min: usize, max: usize) -> Result<(), Error> {
    let n = v.chars().count();
    if n < min || n > max {
        let rule = if min == max {
            format!("must be exactly {min} characters, got {n}")
        } else {
            format!("must be {min} to {max} characters, got {n}")
        };
        return Err(Error::InvalidArgument { field, rule });
    }
    Ok(())
}

fn check_amount(amount: Decimal) -> Result<(), Error> {
    if amount <= Decimal::ZERO {
        return Err(Error::InvalidArgument {
            field: "amount",
            rule: format!("must be a positive number, got {amount}"),
        });
    }
    Ok(())
}

/// A transaction check answer: the transaction, or the reason there is none.
fn transaction_from(env: Envelope, endpoint: &'static str) -> Result<Transaction, Error> {
    let text = env.data_text();
    Transaction::from_text(&text).map_err(|detail| Error::Decode {
        endpoint,
        detail: detail.0,
        excerpt: error::excerpt(text.as_bytes()),
    })
}

/// A list item's answer shaped as a single lookup's.
fn as_single(
    endpoint: &'static str,
    item: Option<Result<ListStatus, Error>>,
    id: &str,
) -> Result<Transaction, Error> {
    match item {
        Some(Ok(ListStatus::Success { transaction })) => Ok(*transaction),
        Some(Ok(ListStatus::NotFound)) => Err(Error::NotFound {
            message: "not found (list)".into(),
        }),
        Some(Ok(ListStatus::Failed)) => Err(Error::TransactionFailed {
            message: "failed (list)".into(),
        }),
        Some(Ok(ListStatus::StaticQr)) => Err(Error::StaticQr {
            message: "static QR (list)".into(),
        }),
        Some(Err(e)) => Err(e),
        None => Err(Error::Decode {
            endpoint,
            detail: format!("the answer does not mention {id}"),
            excerpt: String::new(),
        }),
    }
}

impl Client {
    /// Builds a client sharing `tokens` for the endpoints that take a token.
    pub fn new(cfg: &ClientConfig, tokens: Arc<TokenManager>) -> Result<Self, Error> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bakong-poller/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &cfg.proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|e| Error::InvalidArgument {
                field: "bakong.proxy",
                rule: crate::redact::redact_text(&format!(
                    "{:?} is not a usable proxy URL: {e}",
                    crate::redact::redact_url(p)
                )),
            })?;
            b = b.proxy(proxy);
        }
        let http = b.build().map_err(|e| Error::Transport {
            endpoint: "-",
            detail: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: cfg.base_url.trim_end_matches('/').to_string(),
                timeout: cfg.timeout,
                gate: Gate::new(&cfg.gate),
                quota: Quota::default(),
                tokens,
                last_success_ms: AtomicI64::new(0),
                latencies: Default::default(),
                list_closed: Default::default(),
                forbidden_renewal: Default::default(),
                instruments: Default::default(),
            }),
        })
    }

    /// The shared gate (for its counters).
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The daily quota's pause and the daily budget, shared by all requests.
    pub fn quota(&self) -> &Quota {
        &self.inner.quota
    }

    /// The token manager.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.inner.tokens
    }

    /// Counts every request of this client (and its clones) in `m` from
    /// now on; the first call wins.
    pub fn install_instruments(&self, m: impl RequestObserver + 'static) {
        let _ = self.inner.instruments.set(Arc::new(m));
    }

    /// Unix ms of the last readable answer, 0 if none yet.
    pub fn last_success_ms(&self) -> i64 {
        self.inner.last_success_ms.load(Ordering::Relaxed)
    }

    /// The request latencies (ms) recorded since the last call.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(
            &mut *self
                .inner
                .latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Sends one request through the gate and sorts the answer. The token
    /// is read after the gate lets the request go; the generation it had
    /// comes back with the answer.
    async fn send(
        &self,
        endpoint: &'static str,
        body: &Value,
        auth: Auth,
    ) -> (Result<Envelope, Error>, Option<u64>) {
        if auth == Auth::Required && self.inner.tokens.current().is_none() {
            return (Err(Error::NoToken), None);
        }
        // A renewal goes ahead of the requests in line: they all need it.
        if endpoint == "renew_token" {
            self.inner.gate.acquire_priority().await;
        } else {
            self.inner.gate.acquire().await;
        }
        // The quota's pause and the budget hold requests with the token;
        // checked after the gate, so a request that waited there sees a
        // pause that began meanwhile.
        let now_ms = chrono::Utc::now().timestamp_millis();
        if auth == Auth::None {
            self.inner.quota.count_sent(now_ms);
        } else if let Err(e) = self.inner.quota.admit(now_ms) {
            return (Err(e), None);
        }
        let token = match auth {
            Auth::None => None,
            Auth::Optional | Auth::Required => self.inner.tokens.current(),
        };
        let generation = token.as_ref().map(|(_, g)| *g);
        let url = format!("{}/v1/{endpoint}", self.inner.base);
        let mut req = self.inner.http.post(url).json(body);
        if let Some((t, _)) = &token {
            req = req.bearer_auth(t.expose());
        }
        let started = std::time::Instant::now();
        let result = self.exchange(endpoint, req).await;
        if let Some(m) = self.inner.instruments.get() {
            m.request(endpoint, &result, started.elapsed());
        }
        (result, generation)
    }

    async fn exchange(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Envelope, Error> {
        // The answers of the token endpoints carry a token: none of their
        // body goes into an error (and from there into logs or rows).
        let shown = |body: &[u8]| {
            if matches!(endpoint, "request_token" | "verify" | "renew_token") {
                "(withheld: this answer may hold a token)".to_string()
            } else {
                error::excerpt(body)
            }
        };
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    endpoint,
                    after: self.inner.timeout,
                }
            } else {
                Error::Transport {
                    endpoint,
                    detail: error_chain(&e),
                }
            }
        };
        let sent = std::time::Instant::now();
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(RetryAfter::parse);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::Decode {
                    endpoint,
                    detail: format!("answer larger than {MAX_BODY} bytes"),
                    excerpt: shown(&body),
                });
            }
            body.extend_from_slice(&chunk);
        }
        {
            let mut l = self
                .inner
                .latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if l.len() < MAX_SAMPLES {
                l.push(sent.elapsed().as_millis().min(u32::MAX as u128) as u32);
            }
        }
        let envelope = Envelope::from_slice(&body);
        // The daily quota: errorCode 17, or its message ("Daily request
        // limit of 100 exceeded...") with no errorCode, or a 429 that speaks
        // of a daily limit. About the token for the rest of the day, not a
        // rate.
        if let Ok(env) = &envelope {
            let message = env.response_message.clone().unwrap_or_default();
            let daily = is_daily_limit_message(&message);
            let quota_code = env.response_code != 0
                && (env.error_code == Some(17) || (env.error_code.is_none() && daily))
                && (trusted(status, env) || status == 429);
            if quota_code || (status == 429 && daily) {
                let message = if message.is_empty() {
                    error_code_text(17).to_string()
                } else {
                    message
                };
                return Err(self
                    .inner
                    .quota
                    .exhausted(chrono::Utc::now().timestamp_millis(), message));
            }
        }
        if status == 429 {
            let wait = self.inner.gate.rate_limited_shared(retry_after).await;
            tracing::warn!(endpoint, retry_after = ?retry_after.map(|r| r.wait()), wait_ms = wait.as_millis() as u64, "rate limited by Bakong (HTTP 429); all requests wait");
            return Err(Error::RateLimited {
                retry_after: retry_after.map(|r| r.wait()),
            });
        }
        self.inner.gate.succeeded();
        match status {
            401 => {
                return Err(Error::Unauthorized {
                    detail: match &envelope {
                        Ok(env) => env
                            .response_message
                            .clone()
                            .unwrap_or_else(|| "HTTP 401".into()),
                        Err(_) => "HTTP 401".into(),
                    },
                })
            }
            403 => return Err(Error::Forbidden { endpoint }),
            404 => return Err(Error::EndpointNotFound { endpoint }),
            _ => {}
        }
        let env = match envelope {
            Ok(env) if trusted(status, &env) => env,
            Err(e) if (200..300).contains(&status) => {
                return Err(Error::Decode {
                    endpoint,
                    detail: e.to_string(),
                    excerpt: shown(&body),
                })
            }
            // A redirect, an undocumented 4xx or a 5xx is no answer from
            // Bakong, whatever envelope it carries (a proxy's or a CDN's
            // page, a cache): never a "paid" or a "not found".
            _ => {
                return Err(Error::Http {
                    endpoint,
                    status,
                    excerpt: shown(&body),
                })
            }
        };
        if env.response_code != 0 && env.error_code == Some(6) {
            return Err(Error::Unauthorized {
                detail: env.response_message.unwrap_or_else(|| "errorCode 6".into()),
            });
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.inner.last_success_ms.store(now_ms, Ordering::Relaxed);
        // Bakong answered something other than the quota: it is not spent.
        self.inner.quota.answered(now_ms);
        Ok(env)
    }

    /// Sends a request; when the token is refused (401 / errorCode 6), asks
    /// the manager to refresh the generation the request carried (one
    /// renewal however many requests were refused) and retries once.
    async fn call(
        &self,
        endpoint: &'static str,
        body: &Value,
        auth: Auth,
    ) -> Result<Envelope, Error> {
        let tokens = &self.inner.tokens;
        // No usable token, or one known to have expired: renew before the
        // request (renew_token needs only the email).
        if auth == Auth::Required && tokens.can_renew() {
            match tokens.current() {
                None => {
                    tracing::info!(endpoint, "no usable token; renewing with bakong.email");
                    tokens.refresh(0, self).await?;
                }
                Some((t, g)) if t.known_expired(chrono::Utc::now()) => {
                    tracing::info!(
                        endpoint,
                        "the token's exp has passed; renewing before the request"
                    );
                    tokens.refresh(g, self).await?;
                }
                Some(_) => {}
            }
        }
        let (result, generation) = self.send(endpoint, body, auth).await;
        // The list endpoints' 403 is triaged by `check_md5_batch` (a list
        // closed to a token is a normal state): only other endpoints renew.
        if let (Err(Error::Forbidden { .. }), Some(generation)) = (&result, generation) {
            if !endpoint.ends_with("_list") {
                return self
                    .forbidden(endpoint, body, auth, result, generation)
                    .await;
            }
        }
        let (Err(Error::Unauthorized { detail }), Some(generation)) = (&result, generation) else {
            return result;
        };
        if !tokens.can_renew() {
            return result;
        }
        tracing::info!(endpoint, %detail, "token refused; renewing");
        tokens.refresh(generation, self).await?;
        match self.send(endpoint, body, auth).await.0 {
            Err(Error::Unauthorized { detail }) => {
                tracing::error!(endpoint, %detail, "token refused right after a renewal; check bakong.email and the token's registration");
                Err(Error::Unauthorized { detail })
            }
            other => other,
        }
    }

    /// A 403 to a request that carried a token. The live service answers a
    /// refused token (revoked by a renewal elsewhere) with the same bare
    /// 403 as a geo-block, so before anyone concludes "geo-block" the
    /// token is renewed once (single flight, at most once per
    /// [`FORBIDDEN_RENEW_EVERY`]) and the request asked again: answered,
    /// it was the token; refused the same way (or the renewal refused), it
    /// is the network, and the 403 stands.
    async fn forbidden(
        &self,
        endpoint: &'static str,
        body: &Value,
        auth: Auth,
        result: Result<Envelope, Error>,
        generation: u64,
    ) -> Result<Envelope, Error> {
        let tokens = &self.inner.tokens;
        if !tokens.can_renew() {
            return result;
        }
        {
            let mut last = self
                .inner
                .forbidden_renewal
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            // Another request renewed since this one left: just ask again.
            let renewed_since = tokens.generation() != generation;
            if !renewed_since && last.is_some_and(|t| now < t + FORBIDDEN_RENEW_EVERY) {
                return result;
            }
            if !renewed_since {
                *last = Some(now);
            }
        }
        tracing::info!(
            endpoint,
            "HTTP 403: a refused token looks like a geo-block; renewing once to tell them apart"
        );
        if let Err(e) = tokens.refresh(generation, self).await {
            tracing::debug!(endpoint, error = %e, "the renewal after a 403 failed");
            return result;
        }
        match self.send(endpoint, body, auth).await.0 {
            Err(Error::Forbidden { endpoint }) => Err(Error::Forbidden { endpoint }),
            other => {
                if other.is_ok() {
                    tracing::warn!(
                        endpoint,
                        "the 403 was a refused token (revoked by a renewal elsewhere?): renewed, answered again"
                    );
                }
                other
            }
        }
    }

    /// Renews the token now unless another caller did since `generation`.
    pub async fn renew_if_current(&self, generation: u64) -> Result<(), Error> {
        self.inner.tokens.refresh(generation, self).await
    }

    fn answer(env: Envelope) -> Result<Envelope, Error> {
        if env.response_code == 0 {
            return Ok(env);
        }
        let message = env.response_message.clone().unwrap_or_default();
        Err(match env.error_code {
            Some(1) => Error::NotFound { message },
            Some(2) => Error::StaticQr { message },
            Some(3) => Error::TransactionFailed { message },
            Some(6) => Error::Unauthorized { detail: message },
            Some(code) => Error::Api {
                code,
                message: if message.is_empty() {
                    error_code_text(code).to_string()
                } else {
                    message
                },
            },
            None => Error::Api {
                code: 0,
                message: format!(
                    "responseCode {} without an errorCode: {message}",
                    env.response_code
                ),
            },
        })
    }

    fn token_from(env: Envelope, endpoint: &'static str) -> Result<Token, Error> {
        env.data
            .get("token")
            .and_then(Value::as_str)
            .and_then(Token::new)
            .ok_or_else(|| Error::Decode {
                endpoint,
                detail: "data.token is missing".into(),
                excerpt: String::new(),
            })
    }

    /// `request_token`: registers and has Bakong email a verification code.
    pub async fn request_token(&self, body: &RequestTokenBody) -> Result<String, Error> {
        check_len("email", &body.email, 1, 30)?;
        check_len("organization", &body.organization, 1, 100)?;
        check_len("project", &body.project, 1, 100)?;
        let v = json!({ "email": body.email, "organization": body.organization, "project": body.project });
        let env = Self::answer(self.send("request_token", &v, Auth::None).await.0?)?;
        Ok(env.response_message.unwrap_or_default())
    }

    /// `verify`: exchanges the emailed 20-character code for a token.
    pub async fn verify(&self, code: &str) -> Result<Token, Error> {
        check_len("code", code, 20, 20)?;
        let env = Self::answer(
            self.send("verify", &json!({ "code": code }), Auth::None)
                .await
                .0?,
        )?;
        Self::token_from(env, "verify")
    }

    /// `renew_token`: a fresh token for a registered email.
    pub async fn renew_token(&self, email: &str) -> Result<Token, Error> {
        check_len("email", email, 1, 30)?;
        let env = Self::answer(
            self.send("renew_token", &json!({ "email": email }), Auth::None)
                .await
                .0?,
        )?;
        Self::token_from(env, "renew_token")
    }

    /// `generate_deeplink_by_qr`: a short link that opens a Bakong app.
    pub async fn generate_deeplink(&self, qr: &str, source: &SourceInfo) -> Result<String, Error> {
        check_len("qr", qr, 1, 1000)?;
        check_len("appName", &source.app_name, 1, 255)?;
        check_len("appIconUrl", &source.app_icon_url, 1, 1000)?;
        check_len(
            "appDeepLinkCallback",
            &source.app_deep_link_callback,
            1,
            1000,
        )?;
        let body = json!({ "qr": qr, "sourceInfo": source });
        let env = Self::answer(
            self.call("generate_deeplink_by_qr", &body, Auth::Optional)
                .await?,
        )?;
        env.data
            .get("shortLink")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Decode {
                endpoint: "generate_deeplink_by_qr",
                detail: "data.shortLink is missing".into(),
                excerpt: error::excerpt(env.data.to_string().as_bytes()),
            })
    }

    async fn check_one(&self, endpoint: &'static str, body: Value) -> Result<Transaction, Error> {
        let env = Self::answer(self.call(endpoint, &body, Auth::Required).await?)?;
        transaction_from(env, endpoint)
    }

    /// `check_transaction_by_md5`.
    pub async fn check_md5(&self, md5: &str) -> Result<Transaction, Error> {
        check_len("md5", md5, 1, 255)?;
        self.check_one("check_transaction_by_md5", json!({ "md5": md5 }))
            .await
    }

    /// `check_transaction_by_hash`.
    pub async fn check_hash(&self, hash: &str) -> Result<Transaction, Error> {
        check_len("hash", hash, 1, 255)?;
        self.check_one("check_transaction_by_hash", json!({ "hash": hash }))
            .await
    }

    /// `check_transaction_by_short_hash`: the first 8 characters of the
    /// hash, with the amount and currency.
    pub async fn check_short_hash(
        &self,
        hash: &str,
        amount: Decimal,
        currency: Currency,
    ) -> Result<Transaction, Error> {
        check_len("hash", hash, 8, 8)?;
        check_amount(amount)?;
        // The spec wants a JSON number; the decimal's text is a valid one.
        let amount: Value = serde_json::from_str(&amount.normalize().to_string()).map_err(|e| {
            Error::InvalidArgument {
                field: "amount",
                rule: e.to_string(),
            }
        })?;
        self.check_one(
            "check_transaction_by_short_hash",
            json!({ "hash": hash, "amount": amount, "currency": currency.code() }),
        )
        .await
    }

    /// `check_transaction_by_instruction_ref`.
    pub async fn check_instruction_ref(&self, instruction_ref: &str) -> Result<Transaction, Error> {
        check_len("instructionRef", instruction_ref, 1, 255)?;
        self.check_one(
            "check_transaction_by_instruction_ref",
            json!({ "instructionRef": instruction_ref }),
        )
        .await
    }

    /// `check_transaction_by_external_ref`.
    pub async fn check_external_ref(&self, external_ref: &str) -> Result<Transaction, Error> {
        check_len("externalRef", external_ref, 1, 35)?;
        self.check_one(
            "check_transaction_by_external_ref",
            json!({ "externalRef": external_ref }),
        )
        .await
    }

    /// `check_bakong_account`: whether the account exists. Unknown is
    /// `Ok(false)` (errorCode 11); a malformed id is an error (errorCode 12).
    pub async fn check_account(&self, account_id: &str) -> Result<bool, Error> {
        check_len("accountId", account_id, 1, 255)?;
        match Self::answer(
            self.call(
                "check_bakong_account",
                &json!({ "accountId": account_id }),
                Auth::Optional,
            )
            .await?,
        ) {
            Ok(_) => Ok(true),
            Err(Error::Api { code: 11, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn check_list(
        &self,
        endpoint: &'static str,
        key: &'static str,
        items: &[String],
    ) -> Result<HashMap<String, Result<ListStatus, Error>>, Error> {
        if items.is_empty() || items.len() > MAX_LIST {
            return Err(Error::InvalidArgument {
                field: key,
                rule: format!("a list of 1 to {MAX_LIST} items, got {}", items.len()),
            });
        }
        for item in items {
            check_len(key, item, 1, 255)?;
        }
        if let (Some(m), "check_transaction_by_md5_list") = (self.inner.instruments.get(), endpoint)
        {
            m.bulk_request(items.len());
        }
        let env = Self::answer(self.call(endpoint, &json!(items), Auth::Required).await?)?;
        let text = env.data_text();
        let (read, stray) =
            types::read_list(&text, key, items).map_err(|detail| Error::Decode {
                endpoint,
                detail: detail.0,
                excerpt: error::excerpt(text.as_bytes()),
            })?;
        for s in &stray {
            tracing::warn!(endpoint, item = %s, "list answer item skipped");
        }
        Ok(read
            .into_iter()
            .map(|(id, r)| {
                let r = r.map_err(|detail| Error::Decode {
                    endpoint,
                    detail: format!("{key} {id}: {detail}"),
                    excerpt: String::new(),
                });
                (id, r)
            })
            .collect())
    }

    /// `check_transaction_by_md5_list`: up to 50 md5s in one request. The
    /// map holds an entry per md5 the answer mentioned, each read on its
    /// own (an unreadable item is an error for that md5 only).
    pub async fn check_md5_list(
        &self,
        md5s: &[String],
    ) -> Result<HashMap<String, Result<ListStatus, Error>>, Error> {
        self.check_list("check_transaction_by_md5_list", "md5", md5s)
            .await
    }

    /// `check_transaction_by_hash_list`: up to 50 hashes in one request.
    pub async fn check_hash_list(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Result<ListStatus, Error>>, Error> {
        self.check_list("check_transaction_by_hash_list", "hash", hashes)
            .await
    }

    /// Checks up to 50 md5s with one list request; one answer per md5, in
    /// order, shaped as a single lookup's. The outer error is a failure of
    /// the whole request.
    ///
    /// A 403 from the list is told apart before anyone acts on it: one
    /// single lookup (which renews the token on a 401) says whether the
    /// token was refused (renewed: the list is asked again),
    /// every endpoint is refused ([`Error::GeoBlocked`]), or only the list
    /// is closed to this token ([`Error::ListClosed`]).
    pub async fn check_md5_batch(&self, md5s: &[String]) -> Result<BatchAnswers, Error> {
        const EP: &str = "check_transaction_by_md5_list";
        let before = self.inner.tokens.generation();
        let closed = |generation: u64| {
            *self
                .inner
                .list_closed
                .lock()
                .unwrap_or_else(|e| e.into_inner()) =
                Some((generation, tokio::time::Instant::now() + LIST_CLOSED_MEMORY));
            Error::ListClosed { endpoint: EP }
        };
        let answers = match self.check_md5_list(md5s).await {
            Err(Error::Forbidden { .. }) => {
                let known = *self
                    .inner
                    .list_closed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if known
                    .is_some_and(|(g, until)| g == before && tokio::time::Instant::now() < until)
                {
                    return Err(Error::ListClosed { endpoint: EP });
                }
                let Some(first) = md5s.first() else {
                    return Ok(Vec::new());
                };
                match self.check_md5(first).await {
                    Err(Error::Forbidden { .. }) => return Err(Error::GeoBlocked),
                    // No answer from the single lookup either: the question
                    // stays open, and this batch fails with that error.
                    Err(
                        e @ (Error::Transport { .. }
                        | Error::Timeout { .. }
                        | Error::Unauthorized { .. }
                        | Error::RateLimited { .. }
                        | Error::Http { .. }
                        | Error::Renewal(_)
                        | Error::NoToken
                        | Error::EndpointNotFound { .. }
                        | Error::InvalidArgument { .. }),
                    ) => return Err(e),
                    // Any answer (found, not found, failed, static QR, even
                    // an unreadable transaction or an API error code) shows
                    // single lookups work with this token.
                    _ if self.inner.tokens.generation() != before => {
                        tracing::info!("the list refused the token with a 403; it was renewed, asking the list again");
                        match self.check_md5_list(md5s).await {
                            Err(Error::Forbidden { .. }) => {
                                return Err(closed(self.inner.tokens.generation()))
                            }
                            other => other?,
                        }
                    }
                    _ => return Err(closed(before)),
                }
            }
            other => other?,
        };
        let mut answers = answers;
        Ok(md5s
            .iter()
            .map(|m| as_single(EP, answers.remove(m), m))
            .collect())
    }
}

/// Whether a message says the daily request quota is spent ("Daily
/// request limit of 100 exceeded. Please try again tomorrow."), the
/// quota's words with or without its errorCode 17.
pub(crate) fn is_daily_limit_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("daily") && m.contains("limit")
}

/// Whether an envelope that came with HTTP `status` is Bakong's answer:
/// any envelope of a 2xx, and a 400's failure envelope with an error code
/// of the spec's table about the request (missing fields, accounts, ...),
/// never one about a transaction (found, not found, failed, static QR
/// come with a 200). 401, 403, 404 and 429 are sorted before, by status
/// alone; every other status (redirects included: the client follows
/// none) is no answer.
fn trusted(status: u16, env: &Envelope) -> bool {
    match status {
        200..=299 => true,
        400 => {
            env.response_code != 0
                && env
                    .error_code
                    .is_some_and(|c| (4..=12).contains(&c) || c == 17)
        }
        _ => false,
    }
}

/// The error and its sources in one line, with any URL credentials
/// redacted (reqwest's errors name the request URL).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    crate::redact::redact_text(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(code: i64, error: Option<i64>) -> Envelope {
        Envelope::from_slice(
            json!({"responseCode": code, "errorCode": error, "data": null})
                .to_string()
                .as_bytes(),
        )
        .expect("an envelope")
    }

    #[test]
    fn only_2xx_and_a_400_with_a_request_error_code_are_trusted() {
        for status in [200, 201, 204] {
            assert!(trusted(status, &env(0, None)), "{status}");
            assert!(trusted(status, &env(1, Some(1))), "{status}");
        }
        assert!(trusted(400, &env(1, Some(5))));
        assert!(trusted(400, &env(1, Some(12))));
        for (status, e) in [
            (400, env(0, None)),
            (400, env(1, Some(1))),
            (400, env(1, Some(2))),
            (400, env(1, Some(3))),
            (400, env(1, None)),
            (301, env(0, None)),
            (302, env(1, Some(1))),
            (304, env(0, None)),
            (307, env(0, None)),
            (418, env(0, None)),
            (451, env(1, Some(1))),
            (500, env(0, None)),
            (503, env(1, Some(1))),
            (100, env(0, None)),
        ] {
            assert!(!trusted(status, &e), "{status} {e:?}");
        }
    }
}
