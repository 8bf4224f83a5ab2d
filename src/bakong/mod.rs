//! The Bakong Open API client: every endpoint as a typed function, one
//! request gate, one token keeper.
//!
//! One private function ([`Client::send`]) sends a request and sorts the
//! answer: 2xx envelopes, 401, 403, 404, 429, 5xx and unreadable bodies each
//! become their own [`Error`]. Authorized calls go through
//! [`Client::call_authed`], which renews the token once on a 401 (single
//! flight across all callers) and retries the request once.

mod error;
pub mod gate;
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
pub use token::{Claims, Token, TokenKeeper, TokenSource};
pub use types::{Envelope, ListStatus, RequestTokenBody, SourceInfo, Transaction};

use crate::money::Currency;

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
    /// Registered email, needed by renewals.
    pub email: Option<String>,
    /// The request gate's settings.
    pub gate: GateConfig,
    /// After a failed renewal, further renewals wait this long (doubling
    /// with each failure, at most an hour) instead of hammering renew_token.
    pub renew_cooldown: Duration,
}

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
    email: Option<String>,
    gate: Gate,
    keeper: Option<Arc<TokenKeeper>>,
    /// Unix ms of the last answer that was not an error of transport,
    /// HTTP status or decoding.
    last_success_ms: AtomicI64,
    renewals: std::sync::atomic::AtomicU64,
    /// Milliseconds per answered request since the last `take_latencies`.
    latencies: std::sync::Mutex<Vec<u32>>,
    renew_cooldown: Duration,
    /// The last failed renewal: when, how many in a row, and why.
    renew_failed: std::sync::Mutex<Option<(std::time::Instant, u32, String)>>,
}

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
    Transaction::from_json(&env.data).map_err(|detail| Error::Decode {
        endpoint,
        detail,
        excerpt: error::excerpt(env.data.to_string().as_bytes()),
    })
}

impl Client {
    /// Builds a client. `keeper` is needed by the endpoints that take a token.
    pub fn new(cfg: &ClientConfig, keeper: Option<Arc<TokenKeeper>>) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("bakong-poller/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &cfg.proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|e| {
                crate::config::redact_text(&format!(
                    "bakong.proxy {:?}: {e}",
                    crate::config::redact_url(p)
                ))
            })?;
            b = b.proxy(proxy);
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: cfg.base_url.trim_end_matches('/').to_string(),
                timeout: cfg.timeout,
                email: cfg.email.clone(),
                gate: Gate::new(&cfg.gate),
                keeper,
                last_success_ms: AtomicI64::new(0),
                renewals: Default::default(),
                latencies: Default::default(),
                renew_cooldown: cfg.renew_cooldown,
                renew_failed: Default::default(),
            }),
        })
    }

    /// The shared gate (for its counters).
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The token keeper, if any.
    pub fn keeper(&self) -> Option<&Arc<TokenKeeper>> {
        self.inner.keeper.as_ref()
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

    /// Renewals done by this client.
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// Sends one request through the gate and sorts the answer.
    async fn send(
        &self,
        endpoint: &'static str,
        body: &Value,
        token: Option<&Token>,
    ) -> Result<Envelope, Error> {
        self.inner.gate.acquire().await;
        let url = format!("{}/v1/{endpoint}", self.inner.base);
        let mut req = self.inner.http.post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
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
                    excerpt: error::excerpt(&body),
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
        if status == 429 {
            let wait = self.inner.gate.rate_limited(retry_after);
            tracing::warn!(endpoint, retry_after = ?retry_after.map(|r| r.wait()), wait_ms = wait.as_millis() as u64, "rate limited by Bakong (HTTP 429); all requests wait");
            return Err(Error::RateLimited {
                retry_after: retry_after.map(|r| r.wait()),
            });
        }
        self.inner.gate.succeeded();
        let envelope = serde_json::from_slice::<Envelope>(&body);
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
            Ok(env) if status < 500 => env,
            Err(e) if (200..300).contains(&status) => {
                return Err(Error::Decode {
                    endpoint,
                    detail: e.to_string(),
                    excerpt: error::excerpt(&body),
                })
            }
            _ => {
                return Err(Error::Http {
                    endpoint,
                    status,
                    excerpt: error::excerpt(&body),
                })
            }
        };
        if env.response_code != 0 && env.error_code == Some(6) {
            return Err(Error::Unauthorized {
                detail: env.response_message.unwrap_or_else(|| "errorCode 6".into()),
            });
        }
        self.inner
            .last_success_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        Ok(env)
    }

    /// Sends an authorized request; on a 401 renews once (single flight)
    /// and retries once.
    async fn call_authed(&self, endpoint: &'static str, body: &Value) -> Result<Envelope, Error> {
        let keeper = self.inner.keeper.as_ref().ok_or(Error::NoToken)?;
        let (token, generation) = keeper.current().ok_or(Error::NoToken)?;
        match self.send(endpoint, body, Some(&token)).await {
            Err(Error::Unauthorized { detail }) => {
                tracing::info!(endpoint, %detail, "token refused; renewing");
                self.renew_if_current(generation).await?;
                let (token, _) = keeper.current().ok_or(Error::NoToken)?;
                match self.send(endpoint, body, Some(&token)).await {
                    Err(Error::Unauthorized { detail }) => {
                        tracing::error!(endpoint, %detail, "token refused right after a renewal; check bakong.email and the token's registration");
                        Err(Error::Unauthorized { detail })
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Renews the token unless another caller already did since
    /// `generation`. Exactly one renewal runs at a time.
    pub async fn renew_if_current(&self, generation: u64) -> Result<(), Error> {
        let keeper = self.inner.keeper.as_ref().ok_or(Error::NoToken)?;
        let _guard = keeper.renewing.lock().await;
        if keeper.generation() != generation {
            return Ok(());
        }
        let failed = self
            .inner
            .renew_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((at, n, why)) = &failed {
            let wait = (self.inner.renew_cooldown
                * 2u32.saturating_pow(n.saturating_sub(1).min(12)))
            .min(Duration::from_secs(3600));
            if at.elapsed() < wait {
                return Err(Error::Renewal(format!(
                    "{why} (next attempt in {})",
                    humantime::format_duration(Duration::from_secs(
                        (wait - at.elapsed()).as_secs()
                    ))
                )));
            }
        }
        match self.renew_now().await {
            Ok(()) => {
                *self
                    .inner
                    .renew_failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Err(e) => {
                let n = failed.map(|(_, n, _)| n + 1).unwrap_or(1);
                let why = match &e {
                    Error::Renewal(m) => m.clone(),
                    other => other.to_string(),
                };
                tracing::error!(error = %why, failures = n, "token renewal failed; payments stay pending");
                *self
                    .inner
                    .renew_failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) =
                    Some((std::time::Instant::now(), n, why.clone()));
                Err(Error::Renewal(why))
            }
        }
    }

    async fn renew_now(&self) -> Result<(), Error> {
        let keeper = self.inner.keeper.as_ref().ok_or(Error::NoToken)?;
        let email = self.inner.email.clone().ok_or_else(|| {
            Error::Renewal("bakong.email is not set, so the token cannot be renewed".into())
        })?;
        let token = self.renew_token(&email).await.map_err(|e| match e {
            Error::Renewal(m) => Error::Renewal(m),
            other => Error::Renewal(other.to_string()),
        })?;
        let expires = token.claims().expires_at;
        let generation = keeper.install(token).map_err(Error::Renewal)?;
        self.inner.renewals.fetch_add(1, Ordering::Relaxed);
        tracing::info!(generation, expires_at = ?expires, file = %keeper.file().display(), "access token renewed and saved");
        Ok(())
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
        let v = serde_json::to_value(body).unwrap_or(Value::Null);
        let env = Self::answer(self.send("request_token", &v, None).await?)?;
        Ok(env.response_message.unwrap_or_default())
    }

    /// `verify`: exchanges the emailed 20-character code for a token.
    pub async fn verify(&self, code: &str) -> Result<Token, Error> {
        check_len("code", code, 20, 20)?;
        let env = Self::answer(self.send("verify", &json!({ "code": code }), None).await?)?;
        Self::token_from(env, "verify")
    }

    /// `renew_token`: a fresh token for a registered email.
    pub async fn renew_token(&self, email: &str) -> Result<Token, Error> {
        check_len("email", email, 1, 30)?;
        let env = Self::answer(
            self.send("renew_token", &json!({ "email": email }), None)
                .await?,
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
        let env = Self::answer(self.call_authed("generate_deeplink_by_qr", &body).await?)?;
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
        let env = Self::answer(self.call_authed(endpoint, &body).await?)?;
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
            self.call_authed("check_bakong_account", &json!({ "accountId": account_id }))
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
    ) -> Result<HashMap<String, ListStatus>, Error> {
        if items.is_empty() || items.len() > MAX_LIST {
            return Err(Error::InvalidArgument {
                field: key,
                rule: format!("a list of 1 to {MAX_LIST} items, got {}", items.len()),
            });
        }
        for item in items {
            check_len(key, item, 1, 255)?;
        }
        let env = Self::answer(self.call_authed(endpoint, &json!(items)).await?)?;
        let decode = |detail: String| Error::Decode {
            endpoint,
            detail,
            excerpt: error::excerpt(env.data.to_string().as_bytes()),
        };
        let arr = env
            .data
            .as_array()
            .ok_or_else(|| decode("data is not an array".into()))?;
        let mut out = HashMap::new();
        for entry in arr {
            // Matched by the echoed key, never by position.
            let Some(id) = entry.get(key).and_then(Value::as_str) else {
                return Err(decode(format!("an item has no {key}")));
            };
            if !items.iter().any(|i| i == id) {
                return Err(decode(format!(
                    "the answer names {id:?}, which was not asked for"
                )));
            }
            let status = match entry.get("status").and_then(Value::as_str) {
                Some("SUCCESS") => ListStatus::Success {
                    transaction: Box::new(
                        Transaction::from_json(entry.get("data").unwrap_or(&Value::Null))
                            .map_err(|e| decode(format!("{key} {id}: {e}")))?,
                    ),
                },
                Some("NOT_FOUND") => ListStatus::NotFound,
                Some("FAILED") => ListStatus::Failed,
                Some("STATIC_QR") => ListStatus::StaticQr,
                other => return Err(decode(format!("{key} {id}: unknown status {other:?}"))),
            };
            out.insert(id.to_string(), status);
        }
        Ok(out)
    }

    /// `check_transaction_by_md5_list`: up to 50 md5s in one request. The
    /// map holds an entry per md5 the answer mentioned; a 403/404 is an
    /// error whose [`Error::endpoint_closed`] is true.
    pub async fn check_md5_list(
        &self,
        md5s: &[String],
    ) -> Result<HashMap<String, ListStatus>, Error> {
        self.check_list("check_transaction_by_md5_list", "md5", md5s)
            .await
    }

    /// `check_transaction_by_hash_list`: up to 50 hashes in one request.
    pub async fn check_hash_list(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, ListStatus>, Error> {
        self.check_list("check_transaction_by_hash_list", "hash", hashes)
            .await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
