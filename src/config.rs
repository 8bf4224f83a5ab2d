//! Typed settings: built-in defaults, then the TOML file, then environment
//! variables `BAKONG_POLLER__<SECTION>__<KEY>`; [`Settings::validate`] runs
//! once right after loading and names the key of every problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bakong::{ClientConfig, GateConfig, Token, TokenConfig, PRODUCTION_URL};
use crate::khqr::{Account, AccountKind, KhqrRequest};

/// The commented example config, embedded in the binary (`print-config`).
pub const EXAMPLE: &str = include_str!("../config/bakong-poller.toml");

use crate::redact::{redact_text, redact_url};

/// All settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[database]`.
    pub database: DatabaseSettings,
    /// `[bakong]`.
    pub bakong: BakongSettings,
    /// `[poller]`.
    pub poller: PollerSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[merchant]`: who receives the money in the KHQRs `new` builds.
    pub merchant: MerchantSettings,
    /// `[webhook]`: signed HTTP notifications of final statuses.
    pub webhook: WebhookSettings,
    /// `[hook]`: a command run with each event on stdin.
    pub hook: HookSettings,
    /// `[metrics]`.
    pub metrics: MetricsSettings,
    /// `[api]`: the HTTP API for shops on other hosts.
    pub api: ApiSettings,
    /// Where the settings came from (not a key).
    #[serde(skip)]
    pub origin: Origin,
}

/// Where the settings came from: what the token choice needs to date a
/// `bakong.token` without readable dates.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Whether `bakong.token` came from `BAKONG_POLLER__BAKONG__TOKEN`.
    pub token_from_env: bool,
}

/// `[merchant]`: the receiving account and the fixed parts of every KHQR
/// `new` builds. With only `account_id`, `name` and `city` set: an
/// individual account (tag 29), MCC 5999 and no optional tag, as NBC's SDK
/// does. Lengths are in characters as the SDK counts them (UTF-16 code
/// units).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MerchantSettings {
    /// `individual` (tag 29, the default) or `merchant` (tag 30).
    pub account_type: AccountKind,
    /// The Bakong account (`name@bank`, at most 32); also the receiver the
    /// daemon checks payments against.
    pub account_id: Option<String>,
    /// Merchant name (tag 59), at most 25.
    pub name: Option<String>,
    /// Merchant city (tag 60), at most 15; `Phnom Penh` when unset.
    pub city: Option<String>,
    /// Merchant id (tag 30 sub-tag 01), required with `account_type = "merchant"`.
    pub merchant_id: Option<String>,
    /// Acquiring bank (sub-tag 02), required with `account_type = "merchant"`.
    pub acquiring_bank: Option<String>,
    /// Account information (tag 29 sub-tag 01), individual accounts only.
    pub account_information: Option<String>,
    /// Merchant category code (tag 52), 1 to 4 digits.
    pub mcc: String,
    /// Mobile number (tag 62 sub-tag 02), at most 25.
    pub mobile_number: Option<String>,
    /// Store label (tag 62 sub-tag 03), at most 25.
    pub store_label: Option<String>,
    /// Terminal label (tag 62 sub-tag 07), at most 25.
    pub terminal_label: Option<String>,
    /// Language of the alternate name (tag 64 sub-tag 00), e.g. `km`.
    pub language_preference: Option<String>,
    /// Merchant name in that language (tag 64 sub-tag 01), at most 25.
    pub alternate_name: Option<String>,
    /// Merchant city in that language (tag 64 sub-tag 02), at most 15.
    pub alternate_city: Option<String>,
}

impl Default for MerchantSettings {
    fn default() -> Self {
        MerchantSettings {
            account_type: AccountKind::Individual,
            account_id: None,
            name: None,
            city: None,
            merchant_id: None,
            acquiring_bank: None,
            account_information: None,
            mcc: "5999".into(),
            mobile_number: None,
            store_label: None,
            terminal_label: None,
            language_preference: None,
            alternate_name: None,
            alternate_city: None,
        }
    }
}

impl MerchantSettings {
    /// Whether any key that describes the KHQR is set (the section is
    /// optional for the daemon alone).
    fn is_set(&self) -> bool {
        let d = MerchantSettings::default();
        self.account_id.is_some()
            || self.name.is_some()
            || self.city.is_some()
            || self.merchant_id.is_some()
            || self.acquiring_bank.is_some()
            || self.account_information.is_some()
            || self.mcc != d.mcc
            || self.account_type != d.account_type
            || self.mobile_number.is_some()
            || self.store_label.is_some()
            || self.terminal_label.is_some()
            || self.language_preference.is_some()
            || self.alternate_name.is_some()
            || self.alternate_city.is_some()
    }

    /// A static KHQR request from these keys, with `placeholder` standing in
    /// for a missing `account_id` or `name` (so start-up can check every
    /// key that is set), or an error naming the missing key.
    fn request_with(&self, placeholder: bool) -> Result<KhqrRequest, ConfigError> {
        let need = |v: &Option<String>, key: &str, ph: &str| match v {
            Some(v) => Ok(v.clone()),
            None if placeholder => Ok(ph.to_string()),
            None => Err(ConfigError::key(
                &format!("merchant.{key}"),
                "is not set: a KHQR needs it (see `bakong-poller print-config`)",
            )),
        };
        let account_id = need(&self.account_id, "account_id", "x@x")?;
        let account = match self.account_type {
            AccountKind::Individual => {
                for (key, v) in [("merchant_id", &self.merchant_id)] {
                    if v.is_some() {
                        return Err(ConfigError::key(
                            &format!("merchant.{key}"),
                            "only a merchant account has one; set merchant.account_type = \"merchant\" or remove it",
                        ));
                    }
                }
                Account::Individual {
                    account_id,
                    account_information: self.account_information.clone(),
                    acquiring_bank: self.acquiring_bank.clone(),
                }
            }
            AccountKind::Merchant => {
                if self.account_information.is_some() {
                    return Err(ConfigError::key(
                        "merchant.account_information",
                        "only an individual account has it; a merchant account has merchant.merchant_id",
                    ));
                }
                let required = |v: &Option<String>, key: &str| {
                    v.clone().ok_or_else(|| {
                        ConfigError::key(
                            &format!("merchant.{key}"),
                            "is required with merchant.account_type = \"merchant\"",
                        )
                    })
                };
                Account::Merchant {
                    account_id,
                    merchant_id: required(&self.merchant_id, "merchant_id")?,
                    acquiring_bank: required(&self.acquiring_bank, "acquiring_bank")?,
                }
            }
        };
        let mut r = KhqrRequest::individual("", &need(&self.name, "name", "x")?, "");
        r.account = account;
        r.merchant_city = self.city.clone().unwrap_or_default();
        r.mcc = self.mcc.clone();
        r.additional_data.mobile_number = self.mobile_number.clone();
        r.additional_data.store_label = self.store_label.clone();
        r.additional_data.terminal_label = self.terminal_label.clone();
        r.alternate_language.language_preference = self.language_preference.clone();
        r.alternate_language.name = self.alternate_name.clone();
        r.alternate_language.city = self.alternate_city.clone();
        Ok(r)
    }

    /// The KHQR request these keys describe (static: set `amount`,
    /// `currency` and `expires_at` for a payment), or an error naming the
    /// key that is missing or wrong.
    pub fn request(&self) -> Result<KhqrRequest, ConfigError> {
        let r = self.request_with(false)?;
        check_merchant(&r)?;
        Ok(r)
    }

    /// Values NBC's SDK (and so the encoder) accepts but bank apps are
    /// known to refuse, such as a `mobile_number` of `+855 96 998 3479`:
    /// each names its `merchant.<key>` and the characters. Values the SDK
    /// refuses are problems, not warnings (see [`check_merchant`]).
    fn warnings(&self) -> Vec<ConfigWarning> {
        if !self.is_set() {
            return Vec::new();
        }
        // A key that is missing or refused is a problem, said by validate.
        let Ok(r) = self.request_with(true) else {
            return Vec::new();
        };
        crate::khqr::field_warnings(&r)
            .into_iter()
            .map(|w| ConfigWarning {
                key: merchant_key(w.field),
                message: w.to_string(),
            })
            .collect()
    }
}

/// The `[merchant]` key behind an encoder field.
fn merchant_key(field: &str) -> &'static str {
    match field {
        "account_id" => "merchant.account_id",
        "name" => "merchant.name",
        "city" => "merchant.city",
        "merchant_id" => "merchant.merchant_id",
        "acquiring_bank" => "merchant.acquiring_bank",
        "account_information" => "merchant.account_information",
        "mcc" => "merchant.mcc",
        "mobile_number" => "merchant.mobile_number",
        "store_label" => "merchant.store_label",
        "terminal_label" => "merchant.terminal_label",
        "language_preference" => "merchant.language_preference",
        "alternate_name" => "merchant.alternate_name",
        "alternate_city" => "merchant.alternate_city",
        _ => "merchant",
    }
}

/// Runs the KHQR encoder's checks on a request built from `[merchant]` and
/// names the config key of the first problem.
fn check_merchant(r: &KhqrRequest) -> Result<(), ConfigError> {
    match crate::khqr::encode(r, chrono::Utc::now()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let key = match e.field() {
                Some("account") => {
                    "merchant.account_id + merchant.merchant_id + merchant.acquiring_bank"
                        .to_string()
                }
                Some("additional_data") => {
                    "merchant.mobile_number + merchant.store_label + merchant.terminal_label"
                        .to_string()
                }
                Some(f) => format!("merchant.{f}"),
                None => "merchant".to_string(),
            };
            Err(ConfigError::key(&key, e))
        }
    }
}

/// `[database]`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH`, or `postgres://USER@HOST/DATABASE` (also
    /// `postgresql://`, with the usual parameters such as `sslmode`).
    pub url: String,
    /// How long a statement waits for another writer's lock.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

/// `[bakong]`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BakongSettings {
    /// API base URL.
    pub base_url: String,
    /// Registered email, used by renew_token.
    pub email: Option<String>,
    /// An initial access token.
    pub token: Option<String>,
    /// Where the current token is kept.
    pub token_file: PathBuf,
    /// The merchant's own account; payments to another are a mismatch.
    pub account_id: Option<String>,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// HTTPS proxy for all requests.
    pub proxy: Option<String>,
    /// Renew this long before the token's `exp`.
    #[serde(with = "humantime_serde")]
    pub renew_before: Duration,
}

// A database URL can carry a password (PostgreSQL): Debug shows it redacted.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

impl std::fmt::Debug for BakongSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BakongSettings")
            .field("base_url", &redact_url(&self.base_url))
            .field("email", &self.email)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("token_file", &self.token_file)
            .field("account_id", &self.account_id)
            .field("timeout", &self.timeout)
            .field("proxy", &self.proxy.as_deref().map(redact_url))
            .field("renew_before", &self.renew_before)
            .finish()
    }
}

/// `[poller]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollerSettings {
    /// Ceiling on API requests per second.
    pub max_requests_per_second: f64,
    /// Checks in flight at once.
    pub concurrency: usize,
    /// Lifetime of a row with no `expires_at`.
    #[serde(with = "humantime_serde")]
    pub payment_ttl: Duration,
    /// Extra wait after `expires_at` before a payment may expire.
    #[serde(with = "humantime_serde")]
    pub expiry_grace: Duration,
    /// How often the table is looked at for due rows.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// Interval between checks of a payment younger than `fresh_period`.
    #[serde(with = "humantime_serde")]
    pub fresh_interval: Duration,
    /// How long a payment counts as fresh.
    #[serde(with = "humantime_serde")]
    pub fresh_period: Duration,
    /// Longest interval between checks of an old payment.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Random spread added to every interval, as a fraction (0.0 to 1.0).
    pub jitter: f64,
    /// How long a claimed row stays leased before another run may take it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// First retry delay of a row after a transient error.
    #[serde(with = "humantime_serde")]
    pub error_backoff_min: Duration,
    /// Longest retry delay of a row after transient errors.
    #[serde(with = "humantime_serde")]
    pub error_backoff_max: Duration,
    /// First wait after a 429 without Retry-After.
    #[serde(with = "humantime_serde")]
    pub rate_backoff_min: Duration,
    /// Longest wait after 429s without Retry-After.
    #[serde(with = "humantime_serde")]
    pub rate_backoff_max: Duration,
    /// Retry delay of token renewal after a failure.
    #[serde(with = "humantime_serde")]
    pub renew_retry: Duration,
    /// How often a summary event is logged.
    #[serde(with = "humantime_serde")]
    pub summary_interval: Duration,
    /// Bulk lookups (50 md5s a request): `auto`, `always` or `never`.
    pub bulk: BulkMode,
    /// In `auto`, how long to use single lookups after the bulk endpoint
    /// answered 403/404 before trying it again.
    #[serde(with = "humantime_serde")]
    pub bulk_retry: Duration,
    /// Deprecated, replaced by `poller.cadence`: accepted (a merchant's
    /// config file must not break) and ignored.
    #[serde(with = "humantime_serde")]
    pub bulk_flush: Duration,
    /// In bulk mode, due payments are checked together once per cadence,
    /// each request as full (50 md5s) as the due set allows; a full batch
    /// goes at once. `max_requests_per_second` stays the ceiling.
    #[serde(with = "humantime_serde")]
    pub cadence: Duration,
    /// How long shutdown waits for writes in hand.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// While the daily quota is exhausted (errorCode 17), the interval
    /// between the probes that find out whether it has reset.
    #[serde(with = "humantime_serde")]
    pub quota_probe: Duration,
    /// At most this many requests per UTC day (none when absent), with a
    /// reserve for the payments nearest their deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_request_budget: Option<u64>,
    /// How long after `expired`, `failed` or `cancelled` a row is still
    /// watched for late money (`0`: not at all).
    #[serde(with = "humantime_serde")]
    pub late_watch: Duration,
}

/// `[webhook]`: where events are POSTed, signed the Standard Webhooks way.
/// Its retry settings apply to the `[hook]` command too.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The receiver's URL (`https://...`); unset: no webhook.
    pub url: Option<String>,
    /// One `whsec_` secret, or a list while rotating (each one signs).
    pub secret: WebhookSecrets,
    /// Per-attempt timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts before a delivery is `dead`.
    pub max_attempts: u32,
    /// Delay before the second attempt; each later one is 3 times longer.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest delay between attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

/// `[webhook] secret`: one secret or a list of them.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum WebhookSecrets {
    /// `secret = "whsec_..."`.
    One(String),
    /// `secret = ["whsec_new...", "whsec_old..."]`.
    Many(Vec<String>),
}

impl Default for WebhookSecrets {
    fn default() -> Self {
        WebhookSecrets::Many(Vec::new())
    }
}

impl WebhookSecrets {
    /// The secrets, in order.
    pub fn list(&self) -> Vec<&str> {
        match self {
            WebhookSecrets::One(s) => vec![s.as_str()],
            WebhookSecrets::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

// Secrets never reach Debug output; the URL is shown redacted.
impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "secret",
                &format!("[{} secret(s) REDACTED]", self.secret.list().len()),
            )
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} secret(s) REDACTED]", self.list().len())
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: None,
            secret: WebhookSecrets::default(),
            timeout: Duration::from_secs(10),
            max_attempts: 12,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(4 * 3600),
        }
    }
}

/// `[hook]`: a program run with each event's JSON on stdin; exit 0 is
/// delivered, anything else is retried like a webhook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookSettings {
    /// The argv: `["/path/to/program", "arg"]`; unset: no hook.
    pub command: Option<Vec<String>>,
    /// How long a run may take before it is killed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            command: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Whether the daemon checks 50 md5s per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkMode {
    /// Bulk while the endpoint works; single lookups while it answers 403/404.
    Auto,
    /// Always bulk; a closed endpoint is an error like any other.
    Always,
    /// Single lookups only.
    Never,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `bakong_poller=debug`.
    pub level: String,
}

/// The most connections `metrics.max_connections` may allow (the unit's
/// `LimitNOFILE=` leaves room for them and the daemon's own files).
pub const MAX_CONNECTIONS: usize = 1024;

/// `[api]`: the HTTP API (`/v1/...`) shops on other hosts use with their
/// keys. Off unless `listen` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// `IP:PORT` to serve the API on; unset (the default): off.
    pub listen: Option<String>,
    /// The public base URL links are made of (the daemon usually sits
    /// behind a reverse proxy doing TLS), e.g. `https://pay.example.com`;
    /// unset: links are relative (`/v1/payments/ID`).
    pub public_url: Option<String>,
    /// The checkout page's language when the browser does not say: `km`
    /// or `en`.
    pub default_language: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: None,
            public_url: None,
            default_language: "km".into(),
        }
    }
}

impl ApiSettings {
    /// `api.listen` as a socket address, when set and valid.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    /// `api.public_url` without its trailing slash ("" when unset).
    pub fn base(&self) -> &str {
        self.public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
    }

    fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        if let Some(l) = &self.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                out.push(ConfigError::key(
                    "api.listen",
                    format!("{l:?} is not an IP address and port (e.g. \"127.0.0.1:8080\")"),
                ));
            }
        }
        if let Some(u) = &self.public_url {
            let ok = reqwest::Url::parse(u).is_ok_and(|p| {
                matches!(p.scheme(), "http" | "https")
                    && p.host().is_some()
                    && p.query().is_none()
                    && p.fragment().is_none()
            });
            if !ok {
                out.push(ConfigError::key(
                    "api.public_url",
                    format!("{u:?} is not an http(s) URL without query (e.g. \"https://pay.example.com\")"),
                ));
            }
        }
        if !matches!(self.default_language.as_str(), "km" | "en") {
            out.push(ConfigError::key(
                "api.default_language",
                format!("{:?}: expected \"km\" or \"en\"", self.default_language),
            ));
        }
        out
    }
}

/// The largest `metrics.max_body_bytes` (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// `[metrics]`: the Prometheus endpoint and the health check, and the
/// limits of its listener (the one HTTP listener of the daemon).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `IP:PORT` to serve `GET /metrics` and `GET /healthz` on; unset (the
    /// default): nothing listens and nothing is counted.
    pub listen: Option<String>,
    /// How long a client may take to send a request's headers, counted
    /// from the connection's opening or, on a kept-alive connection, from
    /// the previous answer (so it also closes idle keep-alive connections).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is
    /// closed (a stalled body, a client that does not read its answer).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long one request may take from its headers to its answer; then
    /// the answer is 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections served at once; one more is closed as soon as it is
    /// accepted.
    pub max_connections: usize,
    /// The largest request body accepted, in bytes; a larger one is 413.
    pub max_body_bytes: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: None,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

impl MetricsSettings {
    /// The first listener limit out of its range, naming its key.
    fn limit_problem(&self) -> Result<(), ConfigError> {
        const MAX_WAIT: Duration = Duration::from_secs(600);
        for (key, d) in [
            ("metrics.header_read_timeout", self.header_read_timeout),
            ("metrics.idle_timeout", self.idle_timeout),
            ("metrics.request_timeout", self.request_timeout),
        ] {
            if d.is_zero() || d > MAX_WAIT {
                return Err(ConfigError::key(
                    key,
                    format!(
                        "{} is out of range; give a duration from 1ms to 10m (e.g. \"10s\")",
                        humantime::format_duration(d)
                    ),
                ));
            }
        }
        if self.idle_timeout <= self.request_timeout {
            return Err(ConfigError::key(
                "metrics.idle_timeout",
                format!(
                    "{} is not longer than metrics.request_timeout ({}): a request still being answered would be cut; make it longer",
                    humantime::format_duration(self.idle_timeout),
                    humantime::format_duration(self.request_timeout)
                ),
            ));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(ConfigError::key(
                "metrics.max_connections",
                format!(
                    "{} is out of range; give 1 to {MAX_CONNECTIONS} (each connection is an open file: keep it well under the unit's LimitNOFILE)",
                    self.max_connections
                ),
            ));
        }
        if !(1024..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(ConfigError::key(
                "metrics.max_body_bytes",
                format!(
                    "{} is out of range; give 1024 to {MAX_BODY_BYTES} bytes",
                    self.max_body_bytes
                ),
            ));
        }
        Ok(())
    }

    /// `metrics.listen` as a socket address, when set and valid.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human text (ANSI colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://bakong-poller.db".into(),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for BakongSettings {
    fn default() -> Self {
        BakongSettings {
            base_url: PRODUCTION_URL.into(),
            email: None,
            token: None,
            token_file: PathBuf::from("bakong-token"),
            account_id: None,
            timeout: Duration::from_secs(15),
            proxy: None,
            renew_before: Duration::from_secs(7 * 86400),
        }
    }
}

/// `poller.bulk_flush`'s old default: any other value was set by hand.
const DEPRECATED_BULK_FLUSH: Duration = Duration::from_millis(500);

impl Default for PollerSettings {
    fn default() -> Self {
        PollerSettings {
            max_requests_per_second: 5.0,
            concurrency: 4,
            payment_ttl: Duration::from_secs(15 * 60),
            expiry_grace: Duration::from_secs(120),
            scan_interval: Duration::from_millis(250),
            fresh_interval: Duration::from_secs(2),
            fresh_period: Duration::from_secs(180),
            max_interval: Duration::from_secs(60),
            jitter: 0.2,
            lease: Duration::from_secs(60),
            error_backoff_min: Duration::from_secs(2),
            error_backoff_max: Duration::from_secs(120),
            rate_backoff_min: Duration::from_secs(1),
            rate_backoff_max: Duration::from_secs(60),
            renew_retry: Duration::from_secs(30),
            summary_interval: Duration::from_secs(300),
            bulk: BulkMode::Auto,
            bulk_retry: Duration::from_secs(1800),
            bulk_flush: DEPRECATED_BULK_FLUSH,
            cadence: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(8),
            late_watch: Duration::from_secs(24 * 3600),
            quota_probe: crate::bakong::quota::DEFAULT_PROBE,
            daily_request_budget: None,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A config problem: the key it is about (when one key is to blame) and one
/// line saying what is wrong and what to do. Values that can carry a
/// credential are redacted before they reach the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The key, e.g. `bakong.account_id`.
    pub key: Option<String>,
    /// The whole line, naming the key.
    pub message: String,
}

impl ConfigError {
    /// A problem with one key.
    pub fn key(key: &str, why: impl std::fmt::Display) -> Self {
        ConfigError {
            key: Some(key.to_string()),
            message: redact_text(&format!("config key {key}: {why}")),
        }
    }

    /// A problem with the file or the environment as a whole.
    pub fn general(why: impl std::fmt::Display) -> Self {
        ConfigError {
            key: None,
            message: redact_text(&why.to_string()),
        }
    }
}

/// Something `run` mends or works around by itself, said once: by
/// `config check` and in the daemon's log at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key it is about.
    pub key: &'static str,
    /// What was found and what the daemon does about it.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config key {}: {}", self.key, self.message)
    }
}

/// The endpoint names of the Bakong Open API, as they appear after `/v1/`.
const ENDPOINTS: &[&str] = &[
    "request_token",
    "verify",
    "renew_token",
    "check_transaction_by_md5",
    "check_transaction_by_hash",
    "check_transaction_by_short_hash",
    "check_transaction_by_md5_list",
    "check_transaction_by_hash_list",
    "check_transaction_by_instruction_ref",
    "check_transaction_by_external_ref",
    "check_bakong_account",
    "generate_deeplink_by_qr",
];

/// Splits a base URL into the base the client wants (no trailing `/`) and
/// the API path pasted at its end, if any: `/v1`, `/v1/` or a whole
/// endpoint URL (`/v1/check_transaction_by_md5`). Integrators copy the
/// endpoint URL; the client adds `/v1/<endpoint>` itself, so keeping it
/// would send every request to `/v1/v1/...`, a 404 for ever. Any other path
/// (a relay's prefix) is kept.
pub fn split_api_path(base_url: &str) -> (String, Option<String>) {
    let trimmed = base_url.trim_end_matches('/');
    let (rest, last) = match trimmed.rsplit_once('/') {
        Some(x) => x,
        None => return (trimmed.to_string(), None),
    };
    // Only a path segment counts, never the host of "https://v1".
    let in_path = |head: &str| head.contains("://") && !head.ends_with(':') && !head.ends_with('/');
    if last == "v1" && in_path(rest) {
        return (rest.to_string(), Some(base_url[rest.len()..].to_string()));
    }
    if ENDPOINTS.contains(&last) {
        if let Some((head, v1)) = rest.rsplit_once('/') {
            if v1 == "v1" && in_path(head) {
                return (head.to_string(), Some(base_url[head.len()..].to_string()));
            }
        }
    }
    (trimmed.to_string(), None)
}

/// The range of `poller.max_requests_per_second`.
pub const MIN_RATE: f64 = 0.01;
/// See [`MIN_RATE`].
pub const MAX_RATE: f64 = 1000.0;
/// The longest timeout (`bakong.timeout`, `webhook.timeout`,
/// `hook.timeout`, `database.busy_timeout`).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest of every other duration setting.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// An account id that Bakong's data could never equal; the message quotes
/// it and suggests the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAccountId(pub String);

/// Checks a Bakong account id as the API compares it: exactly, so
/// `name@bank`, lower case, no white space anywhere, at most 32 characters
/// (the KHQR field's limit). The error says what is wrong and, when it can,
/// the value that was probably meant.
pub fn check_account_id(a: &str) -> Result<(), InvalidAccountId> {
    let fixed: String = a
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let hint = |why: &str| {
        let mut m = format!("{a:?} {why}; Bakong compares account ids exactly, so every payment would be a mismatch");
        if fixed != a && is_account_shape(&fixed) {
            m.push_str(&format!(": write {fixed:?}"));
        }
        m
    };
    if a.trim() != a {
        return Err(InvalidAccountId(hint(
            "has white space at its start or end",
        )));
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidAccountId(hint(
            "holds white space or control characters",
        )));
    }
    if a.chars().any(|c| c.is_uppercase()) {
        return Err(InvalidAccountId(hint(
            "has upper-case letters (Bakong account ids are lower case)",
        )));
    }
    if !is_account_shape(a) {
        return Err(InvalidAccountId(format!(
            "{a:?} is not a Bakong account id: expected name@bank (e.g. \"shop@aclb\"), ASCII, at most 32 characters"
        )));
    }
    Ok(())
}

fn is_account_shape(a: &str) -> bool {
    let Some((name, bank)) = a.split_once('@') else {
        return false;
    };
    !name.is_empty()
        && !bank.is_empty()
        && !bank.contains('@')
        && a.len() <= 32
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !c.is_ascii_uppercase())
}

/// Refuses white space and control characters in a string the API (or the
/// HTTP stack) compares or parses exactly.
fn exact(key: &str, v: &str, what: &str) -> Result<(), ConfigError> {
    if v.trim() != v {
        return Err(ConfigError::key(
            key,
            format!(
                "{:?} has white space at its start or end; remove it",
                redact_url(v)
            ),
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::key(
            key,
            format!(
                "{:?} holds white space or control characters; {what}",
                redact_url(v)
            ),
        ));
    }
    Ok(())
}

/// Shortens a config-crate error (a TOML parse error quotes the line in a
/// few lines of its own) to one line; secrets are redacted by the caller.
fn one_line(e: &config::ConfigError) -> String {
    let text = e.to_string();
    let is_snippet = |l: &str| {
        l.starts_with('|')
            || l.split_once(" |")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_snippet(l))
        .collect();
    lines.join(" ")
}

impl Settings {
    /// Loads defaults, then `path` (if given), then the environment, and
    /// validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let s = Self::load_unchecked(path)?;
        s.validate()?;
        Ok(s)
    }

    /// Loads like [`Settings::load`] but stops after reading: the values
    /// have their types, not yet their checks (see [`Settings::problems`]).
    pub fn load_unchecked(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder();
        if let Some(p) = path {
            if !p.is_file() {
                return Err(ConfigError::general(format!(
                    "config file {} does not exist (print a commented example with `bakong-poller print-config`)",
                    p.display()
                )));
            }
            b = b.add_source(config::File::from(p).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("BAKONG_POLLER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let built = b
            .build()
            .map_err(|e| ConfigError::general(format!("config: {}", one_line(&e))))?;
        let mut s: Settings = built
            .try_deserialize()
            .map_err(|e| ConfigError::general(format!("config: {}", one_line(&e))))?;
        s.origin = Origin {
            file: path.map(Path::to_path_buf),
            token_from_env: std::env::var_os("BAKONG_POLLER__BAKONG__TOKEN").is_some(),
        };
        Ok(s)
    }

    /// Checks every value and names the key of the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem of the values, each naming its key.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = self.connection_problems();
        out.extend(self.poller_problems());
        out.extend(self.bound_problems());
        out.extend(self.log_problems());
        out
    }

    /// `[database]`, `[bakong]` and `[merchant]`: where to connect and what is compared with API data.
    fn connection_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut push = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        let bad = |key: &str, why: String| Err(ConfigError::key(key, why));
        // A path may hold spaces; only its ends must be clean.
        let url = &self.database.url;
        push(if url.trim() != url {
            bad(
                "database.url",
                format!(
                    "{:?} has white space at its start or end; remove it",
                    redact_url(url)
                ),
            )
        } else if crate::store::postgres::accepts(url) {
            crate::store::postgres::check_url(url).or_else(|why| {
                bad(
                    "database.url",
                    format!(
                        "{:?} is not a usable PostgreSQL URL: {why}",
                        redact_url(url)
                    ),
                )
            })
        } else if self.database_path().is_none() {
            bad(
                "database.url",
                format!(
                    "{:?} is not of the form sqlite://PATH or postgres://USER@HOST/DATABASE",
                    redact_url(&self.database.url)
                ),
            )
        } else {
            Ok(())
        });
        push(self.check_base_url());
        if let Some(e) = &self.bakong.email {
            push(
                exact("bakong.email", e, "renew_token compares the email exactly").and_then(|()| {
                    if e.is_empty() || e.chars().count() > 30 || e.matches('@').count() != 1 {
                        bad(
                            "bakong.email",
                            format!("{e:?} is not an email of at most 30 characters"),
                        )
                    } else {
                        Ok(())
                    }
                }),
            );
        }
        if let Some(t) = &self.bakong.token {
            if !t.is_empty() && Token::new(t).is_none() {
                push(bad(
                    "bakong.token",
                    "holds white space or control characters".into(),
                ));
            }
        }
        if self.bakong.token_file.as_os_str().is_empty() {
            push(bad("bakong.token_file", "must be a path".into()));
        }
        if let Some(p) = &self.bakong.proxy {
            push(exact("bakong.proxy", p, "remove them").and_then(|()| {
                match reqwest::Url::parse(p) {
                    Ok(u) if ["http", "https", "socks5", "socks5h"].contains(&u.scheme()) => Ok(()),
                    _ => bad(
                        "bakong.proxy",
                        format!(
                            "{:?} is not a proxy URL (e.g. \"http://proxy.example:3128\", port 1 to 65535)",
                            redact_url(p)
                        ),
                    ),
                }
            }));
        }
        if let Some(a) = &self.bakong.account_id {
            push(check_account_id(a).or_else(|why| bad("bakong.account_id", why.0)));
        }
        if let Some(a) = &self.merchant.account_id {
            push(check_account_id(a).or_else(|why| bad("merchant.account_id", why.0)));
        }
        if self.merchant.is_set() {
            push(
                self.merchant
                    .request_with(true)
                    .and_then(|r| check_merchant(&r)),
            );
        }
        if let (Some(m), Some(b)) = (&self.merchant.account_id, &self.bakong.account_id) {
            if m != b {
                push(Err(ConfigError {
                    key: Some("merchant.account_id".into()),
                    message: redact_text(&format!(
                        "config keys merchant.account_id ({m:?}) and bakong.account_id ({b:?}) differ: the daemon checks one receiver; set one of them, or the same account in both"
                    )),
                }));
            }
        }
        out
    }

    /// Upper bounds of every duration: the daemon multiplies, adds and
    /// converts them (backoffs, leases, deadlines), and a value no one
    /// means (`100000h`) must be refused with its key, never overflow.
    fn bound_problems(&self) -> Vec<ConfigError> {
        let p = &self.poller;
        let timeouts = [
            ("database.busy_timeout", self.database.busy_timeout),
            ("bakong.timeout", self.bakong.timeout),
            ("webhook.timeout", self.webhook.timeout),
            ("hook.timeout", self.hook.timeout),
        ]
        .map(|(k, d)| (k, d, MAX_TIMEOUT));
        let others = [
            ("bakong.renew_before", self.bakong.renew_before),
            ("poller.payment_ttl", p.payment_ttl),
            ("poller.expiry_grace", p.expiry_grace),
            ("poller.scan_interval", p.scan_interval),
            ("poller.fresh_interval", p.fresh_interval),
            ("poller.fresh_period", p.fresh_period),
            ("poller.max_interval", p.max_interval),
            ("poller.lease", p.lease),
            ("poller.error_backoff_min", p.error_backoff_min),
            ("poller.error_backoff_max", p.error_backoff_max),
            ("poller.rate_backoff_min", p.rate_backoff_min),
            ("poller.rate_backoff_max", p.rate_backoff_max),
            ("poller.renew_retry", p.renew_retry),
            ("poller.summary_interval", p.summary_interval),
            ("poller.bulk_retry", p.bulk_retry),
            ("poller.bulk_flush", p.bulk_flush),
            ("poller.cadence", p.cadence),
            ("poller.shutdown_timeout", p.shutdown_timeout),
            ("poller.late_watch", p.late_watch),
            ("poller.quota_probe", p.quota_probe),
            ("webhook.retry_min", self.webhook.retry_min),
            ("webhook.retry_max", self.webhook.retry_max),
        ]
        .map(|(k, d)| (k, d, MAX_DURATION));
        timeouts
            .into_iter()
            .chain(others)
            .filter(|(_, d, max)| d > max)
            .map(|(key, d, max)| {
                ConfigError::key(
                    key,
                    format!(
                        "{} is out of range: at most {}",
                        humantime::format_duration(d),
                        humantime::format_duration(max)
                    ),
                )
            })
            .collect()
    }

    /// `[poller]`: rates, intervals and their relations.
    fn poller_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut push = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        let bad = |key: &str, why: String| Err(ConfigError::key(key, why));
        let p = &self.poller;
        if !(MIN_RATE..=MAX_RATE).contains(&p.max_requests_per_second) {
            push(bad(
                "poller.max_requests_per_second",
                format!(
                    "{} is out of range: must be {MIN_RATE} to {MAX_RATE} requests per second",
                    p.max_requests_per_second
                ),
            ));
        }
        if p.concurrency == 0 || p.concurrency > 256 {
            push(bad(
                "poller.concurrency",
                format!("{} must be 1 to 256", p.concurrency),
            ));
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            push(bad(
                "poller.jitter",
                format!("{} must be between 0.0 and 1.0", p.jitter),
            ));
        }
        for (key, d) in [
            ("bakong.timeout", self.bakong.timeout),
            ("poller.payment_ttl", p.payment_ttl),
            ("poller.scan_interval", p.scan_interval),
            ("poller.fresh_interval", p.fresh_interval),
            ("poller.max_interval", p.max_interval),
            ("poller.lease", p.lease),
            ("poller.error_backoff_min", p.error_backoff_min),
            ("poller.rate_backoff_min", p.rate_backoff_min),
            ("poller.renew_retry", p.renew_retry),
            ("poller.summary_interval", p.summary_interval),
            ("poller.bulk_retry", p.bulk_retry),
            ("poller.quota_probe", p.quota_probe),
            ("poller.cadence", p.cadence),
        ] {
            if d.is_zero() {
                push(bad(key, "must be longer than zero".into()));
            }
        }
        if p.daily_request_budget == Some(0) {
            push(bad(
                "poller.daily_request_budget",
                "0 must be a positive number of requests per day; remove the key for no budget"
                    .into(),
            ));
        }
        if p.max_interval < p.fresh_interval {
            push(bad(
                "poller.max_interval",
                "must not be shorter than poller.fresh_interval".into(),
            ));
        }
        if p.error_backoff_max < p.error_backoff_min {
            push(bad(
                "poller.error_backoff_max",
                "must not be shorter than poller.error_backoff_min".into(),
            ));
        }
        if p.rate_backoff_max < p.rate_backoff_min {
            push(bad(
                "poller.rate_backoff_max",
                "must not be shorter than poller.rate_backoff_min".into(),
            ));
        }
        if p.lease <= self.bakong.timeout {
            push(bad(
                "poller.lease",
                "must be longer than bakong.timeout, or a slow check would be taken twice".into(),
            ));
        }
        push_notify_problems(self, &mut push);
        if p.shutdown_timeout > Duration::from_secs(9) {
            push(bad(
                "poller.shutdown_timeout",
                "must be at most 9s: the daemon promises to exit within 10s".into(),
            ));
        }
        out
    }

    /// `[log]` and `[metrics]`.
    fn log_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut push = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        let bad = |key: &str, why: String| Err(ConfigError::key(key, why));
        if let Some(l) = &self.metrics.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                push(bad(
                    "metrics.listen",
                    format!("{l:?} is not an IP address and port (e.g. \"127.0.0.1:9464\"; \"[::1]:9464\" for IPv6)"),
                ));
            }
        }
        push(self.metrics.limit_problem());
        for p in self.api.problems() {
            push(Err(p));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            push(bad(
                "log.level",
                format!("{:?} is not a tracing filter", self.log.level),
            ));
        }
        out
    }

    /// The webhook's signing keys, decoded (validation has checked them).
    pub fn webhook_keys(&self) -> Vec<crate::event::sign::SigningKey> {
        self.webhook
            .secret
            .list()
            .into_iter()
            .filter_map(|s| crate::event::sign::SigningKey::from_secret(s).ok())
            .collect()
    }

    fn check_base_url(&self) -> Result<(), ConfigError> {
        let key = "bakong.base_url";
        let base = &self.bakong.base_url;
        exact(key, base, "remove them")?;
        let shown = redact_url(base);
        let parsed = reqwest::Url::parse(base);
        match parsed {
            Ok(u) if ["http", "https"].contains(&u.scheme()) && u.host().is_some() => {
                if u.query().is_some() || u.fragment().is_some() {
                    return Err(ConfigError::key(
                        key,
                        format!("{shown:?} has a query or fragment; give the base only (e.g. \"https://api-bakong.nbc.gov.kh\")"),
                    ));
                }
                Ok(())
            }
            _ => Err(ConfigError::key(
                key,
                format!("{shown:?} is not an http(s) URL (e.g. \"https://api-bakong.nbc.gov.kh\")"),
            )),
        }
    }

    /// What is not wrong but worth saying once (shown by `config check`,
    /// logged by `run` at start): values the daemon corrects by itself, and
    /// `[merchant]` values NBC's SDK accepts but bank apps are known to
    /// refuse.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        if let (base, Some(removed)) = split_api_path(&self.bakong.base_url) {
            out.push(ConfigWarning {
                key: "bakong.base_url",
                message: format!(
                    "{:?} ends in {removed:?}, the API's own path, which the client adds itself; using {:?} (remove {removed:?} from the config)",
                    redact_url(&self.bakong.base_url),
                    redact_url(&base)
                ),
            });
        }
        if let Some(a) = self.metrics.listen_addr().filter(|a| !a.ip().is_loopback()) {
            out.push(ConfigWarning {
                key: "metrics.listen",
                message: format!(
                    "{a} is reachable from other hosts and /metrics and /healthz ask for no credentials; allow only your Prometheus server in the firewall"
                ),
            });
        }
        if self.poller.bulk_flush != DEPRECATED_BULK_FLUSH {
            out.push(ConfigWarning {
                key: "poller.bulk_flush",
                message: "is deprecated and ignored: due payments are now checked together once per poller.cadence (default 1s); remove the key, or set poller.cadence".into(),
            });
        }
        out.extend(self.merchant.warnings());
        out
    }

    /// The API base the client uses: `bakong.base_url` without trailing
    /// slashes and without the API path pasted at its end (`/v1`).
    pub fn api_base_url(&self) -> String {
        split_api_path(&self.bakong.base_url).0
    }

    /// The account the daemon checks receivers against: `[merchant]
    /// account_id`, else `bakong.account_id` (validation refuses both set
    /// and different).
    pub fn receiver_account(&self) -> Option<&str> {
        self.merchant
            .account_id
            .as_deref()
            .or(self.bakong.account_id.as_deref())
    }

    /// The settings as a TOML config file (the token included: for files
    /// the daemon writes for itself, such as the benchmark's).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self)
            .map_err(|e| ConfigError::general(format!("cannot write settings as TOML: {e}")))
    }

    /// The database file path from `database.url`.
    pub fn database_path(&self) -> Option<PathBuf> {
        let rest = self.database.url.strip_prefix("sqlite://")?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// How the token manager renews.
    pub fn token_config(&self) -> TokenConfig {
        TokenConfig {
            email: self.bakong.email.clone(),
            renew_before: self.bakong.renew_before,
            renew_retry: self.poller.renew_retry,
        }
    }

    /// `$CREDENTIALS_DIRECTORY` (systemd's LoadCredential): the one place
    /// that reads that variable.
    pub fn credentials_dir(&self) -> Option<PathBuf> {
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
    }

    /// The configured token, if any.
    pub fn config_token(&self) -> Option<Token> {
        self.bakong.token.as_deref().and_then(Token::new)
    }

    /// The API client settings.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.api_base_url(),
            timeout: self.bakong.timeout,
            proxy: self.bakong.proxy.clone(),
            gate: GateConfig {
                max_requests_per_second: Some(self.poller.max_requests_per_second),
                backoff_min: self.poller.rate_backoff_min,
                backoff_max: self.poller.rate_backoff_max,
            },
        }
    }
}

/// The `[webhook]` and `[hook]` checks.
fn push_notify_problems(s: &Settings, push: &mut impl FnMut(Result<(), ConfigError>)) {
    let bad = |key: &str, why: String| Err(ConfigError::key(key, why));
    let w = &s.webhook;
    let secrets = w.secret.list();
    if let Some(url) = &w.url {
        let shown = redact_url(url);
        push(match reqwest::Url::parse(url) {
            Ok(u) if ["http", "https"].contains(&u.scheme()) && u.host().is_some() => Ok(()),
            _ => bad(
                "webhook.url",
                format!(
                    "{shown:?} is not an http(s) URL (e.g. \"https://shop.example/bakong-events\")"
                ),
            ),
        });
        if secrets.is_empty() {
            push(bad(
                "webhook.secret",
                "is required with webhook.url: a whsec_ secret (whsec_ + base64 of 24 to 64 random bytes, e.g. \"whsec_$(openssl rand -base64 32)\")".into(),
            ));
        }
    }
    for (i, secret) in secrets.iter().enumerate() {
        if let Err(e) = crate::event::sign::SigningKey::from_secret(secret) {
            let which = if secrets.len() > 1 {
                format!(" (secret number {})", i + 1)
            } else {
                String::new()
            };
            push(bad("webhook.secret", format!("{e}{which}")));
        }
    }
    for (key, d) in [
        ("webhook.timeout", w.timeout),
        ("webhook.retry_min", w.retry_min),
        ("hook.timeout", s.hook.timeout),
    ] {
        if d.is_zero() {
            push(bad(key, "must be longer than zero".into()));
        }
    }
    if w.max_attempts == 0 || w.max_attempts > 100 {
        push(bad(
            "webhook.max_attempts",
            format!("{} must be 1 to 100", w.max_attempts),
        ));
    }
    if w.retry_max < w.retry_min {
        push(bad(
            "webhook.retry_max",
            "must not be shorter than webhook.retry_min".into(),
        ));
    }
    if let Some(cmd) = &s.hook.command {
        if cmd.first().is_none_or(|p| p.trim().is_empty()) {
            push(bad(
                "hook.command",
                "must be a non-empty argv list, e.g. [\"/usr/local/bin/on-payment\", \"--shop\", \"1\"]".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_example_is_a_valid_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, EXAMPLE).expect("write");
        Settings::load(Some(&p)).expect("example config loads");
    }

    #[test]
    fn out_of_range_rates_and_durations_are_refused_naming_the_key_and_range() {
        let big = Duration::from_secs(400 * 86_400);
        type Edit = Box<dyn Fn(&mut Settings)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "poller.max_requests_per_second",
                Box::new(|s| s.poller.max_requests_per_second = 1e-20),
            ),
            (
                "poller.max_requests_per_second",
                Box::new(|s| s.poller.max_requests_per_second = 0.001),
            ),
            (
                "poller.max_requests_per_second",
                Box::new(|s| s.poller.max_requests_per_second = 5000.0),
            ),
            (
                "poller.max_requests_per_second",
                Box::new(|s| s.poller.max_requests_per_second = f64::INFINITY),
            ),
            (
                "bakong.timeout",
                Box::new(|s| s.bakong.timeout = Duration::from_secs(2 * 3600)),
            ),
            (
                "database.busy_timeout",
                Box::new(|s| s.database.busy_timeout = Duration::MAX),
            ),
            (
                "webhook.timeout",
                Box::new(|s| s.webhook.timeout = Duration::from_secs(7200)),
            ),
            ("hook.timeout", Box::new(|s| s.hook.timeout = Duration::MAX)),
            (
                "poller.payment_ttl",
                Box::new(move |s| s.poller.payment_ttl = big),
            ),
            (
                "poller.expiry_grace",
                Box::new(move |s| s.poller.expiry_grace = big),
            ),
            (
                "poller.cadence",
                Box::new(|s| s.poller.cadence = Duration::MAX),
            ),
            (
                "poller.fresh_period",
                Box::new(|s| s.poller.fresh_period = Duration::MAX),
            ),
            (
                "poller.error_backoff_max",
                Box::new(move |s| s.poller.error_backoff_max = big),
            ),
            (
                "poller.rate_backoff_max",
                Box::new(move |s| s.poller.rate_backoff_max = big),
            ),
            (
                "poller.bulk_flush",
                Box::new(|s| s.poller.bulk_flush = Duration::MAX),
            ),
            (
                "bakong.renew_before",
                Box::new(|s| s.bakong.renew_before = Duration::MAX),
            ),
            (
                "webhook.retry_max",
                Box::new(|s| s.webhook.retry_max = Duration::MAX),
            ),
        ];
        for (key, edit) in cases {
            let mut s = Settings::default();
            edit(&mut s);
            let problems = s.problems();
            let p = problems
                .iter()
                .find(|e| e.key.as_deref() == Some(key))
                .unwrap_or_else(|| panic!("{key}: no problem naming it in {problems:?}"));
            let text = p.to_string();
            assert!(text.contains("at most") || text.contains(" to "), "{text}");
        }
        // The bounds themselves pass.
        let mut s = Settings::default();
        s.poller.max_requests_per_second = 0.01;
        s.bakong.timeout = Duration::from_secs(3600);
        s.poller.lease = Duration::from_secs(3601);
        s.poller.payment_ttl = Duration::from_secs(366 * 86_400);
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        s.poller.max_requests_per_second = 1000.0;
        assert!(s.problems().is_empty(), "{:?}", s.problems());
    }

    #[test]
    fn listener_limits_out_of_range_are_refused_naming_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        for (line, key) in [
            (
                "header_read_timeout = \"0s\"",
                "metrics.header_read_timeout",
            ),
            ("idle_timeout = \"11m\"", "metrics.idle_timeout"),
            ("request_timeout = \"0ms\"", "metrics.request_timeout"),
            ("max_connections = 0", "metrics.max_connections"),
            ("max_connections = 5000", "metrics.max_connections"),
            ("max_body_bytes = 10", "metrics.max_body_bytes"),
        ] {
            std::fs::write(&p, format!("[metrics]\n{line}\n")).expect("write");
            let e = Settings::load(Some(&p)).expect_err(line);
            assert!(e.to_string().contains(key), "{line}: {e}");
        }
        std::fs::write(
            &p,
            "[metrics]\nheader_read_timeout = \"300ms\"\nmax_connections = 4\nmax_body_bytes = 4096\n",
        )
        .expect("write");
        let s = Settings::load(Some(&p)).expect("limits in range load");
        assert_eq!(s.metrics.max_connections, 4);
        assert_eq!(s.metrics.header_read_timeout, Duration::from_millis(300));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[poller]\nmax_requests_per_second = 0\n").expect("write");
        let e = Settings::load(Some(&p)).expect_err("refused");
        assert!(
            e.to_string().contains("poller.max_requests_per_second"),
            "{e}"
        );
        std::fs::write(&p, "[poller]\npayment_ttl = \"soon\"\n").expect("write");
        let e = Settings::load(Some(&p)).expect_err("refused");
        assert!(e.to_string().contains("payment_ttl"), "{e}");
    }

    #[test]
    fn settings_round_trip_through_toml() {
        let mut s = Settings::default();
        s.poller.fresh_interval = Duration::from_millis(150);
        s.bakong.email = Some("a@b.c".into());
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, s.to_toml().expect("toml")).expect("write");
        let back = Settings::load(Some(&p)).expect("loads");
        assert_eq!(back.poller.fresh_interval, Duration::from_millis(150));
        assert_eq!(back.bakong.email.as_deref(), Some("a@b.c"));
    }

    fn toml_str(s: &str) -> String {
        toml::Value::String(s.to_string()).to_string()
    }

    fn load_text(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).expect("write");
        Settings::load(Some(&p))
    }

    #[test]
    fn the_api_path_pasted_at_the_end_of_the_base_url_is_removed() {
        for (given, base, removed) in [
            (
                "https://api-bakong.nbc.gov.kh/v1",
                "https://api-bakong.nbc.gov.kh",
                Some("/v1"),
            ),
            (
                "https://api-bakong.nbc.gov.kh/v1/",
                "https://api-bakong.nbc.gov.kh",
                Some("/v1/"),
            ),
            (
                "http://127.0.0.1:8080/v1//",
                "http://127.0.0.1:8080",
                Some("/v1//"),
            ),
            (
                "https://api-bakong.nbc.gov.kh/v1/check_transaction_by_md5",
                "https://api-bakong.nbc.gov.kh",
                Some("/v1/check_transaction_by_md5"),
            ),
            (
                "https://relay.example/bakong/v1",
                "https://relay.example/bakong",
                Some("/v1"),
            ),
        ] {
            let (b, r) = split_api_path(given);
            assert_eq!((b.as_str(), r.as_deref()), (base, removed), "{given}");
        }
        for (given, base) in [
            (
                "https://api-bakong.nbc.gov.kh",
                "https://api-bakong.nbc.gov.kh",
            ),
            (
                "https://api-bakong.nbc.gov.kh/",
                "https://api-bakong.nbc.gov.kh",
            ),
            (
                "https://relay.example/bakong",
                "https://relay.example/bakong",
            ),
            (
                "https://relay.example/v1/bakong",
                "https://relay.example/v1/bakong",
            ),
            ("https://relay.example/v10", "https://relay.example/v10"),
            ("https://v1", "https://v1"),
        ] {
            assert_eq!(split_api_path(given), (base.to_string(), None), "{given}");
        }
    }

    #[test]
    fn a_deprecated_bulk_flush_still_loads_with_a_warning_naming_its_replacement() {
        let s = load_text("[poller]\nbulk_flush = \"200ms\"\ndaily_request_budget = 5000\nquota_probe = \"10m\"\n")
            .expect("loads");
        let w = s.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "poller.bulk_flush");
        assert!(w[0].to_string().contains("poller.cadence"), "{}", w[0]);
        assert_eq!(s.poller.daily_request_budget, Some(5000));
        assert_eq!(s.poller.quota_probe, Duration::from_secs(600));
        assert!(load_text("[poller]\ndaily_request_budget = 0\n").is_err());
    }

    #[test]
    fn a_base_url_ending_in_v1_loads_with_one_warning_and_the_client_drops_it() {
        let s = load_text("[bakong]\nbase_url = \"http://127.0.0.1:9/v1/\"\n").expect("loads");
        let w = s.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "bakong.base_url");
        assert!(w[0].to_string().contains("/v1"), "{}", w[0]);
        assert_eq!(s.client_config().base_url, "http://127.0.0.1:9");
        let plain =
            load_text("[bakong]\nbase_url = \"https://relay.example/bakong\"\n").expect("loads");
        assert!(plain.warnings().is_empty());
        assert_eq!(
            plain.client_config().base_url,
            "https://relay.example/bakong"
        );
    }

    #[test]
    fn base_urls_that_cannot_work_are_refused_naming_the_key() {
        for bad in [
            "api-bakong.nbc.gov.kh",
            "ftp://api-bakong.nbc.gov.kh",
            " https://api-bakong.nbc.gov.kh",
            "https://api-bakong.nbc.gov.kh ",
            "https://api-bakong.nbc.gov.kh?x=1",
            "https://api-bakong.nbc.gov.kh#v1",
        ] {
            let e = load_text(&format!("[bakong]\nbase_url = {}\n", toml_str(bad))).expect_err(bad);
            assert_eq!(e.key.as_deref(), Some("bakong.base_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn account_ids_must_be_name_at_bank_exactly() {
        for good in [
            "demo_shop@aclb",
            "shop@devb",
            "jonhsmith@nbcq",
            "a.b-c_1@abaa",
        ] {
            assert_eq!(check_account_id(good), Ok(()), "{good}");
        }
        for (bad, hint) in [
            ("demo_shop@aclb ", Some("demo_shop@aclb")),
            (" demo_shop@aclb", Some("demo_shop@aclb")),
            ("demo_shop@aclb\t", Some("demo_shop@aclb")),
            ("demo_shop@aclb\n", Some("demo_shop@aclb")),
            ("demo shop@aclb", Some("demoshop@aclb")),
            ("demo_shop@\u{a0}aclb", Some("demo_shop@aclb")),
            ("Demo_Shop@ACLB", Some("demo_shop@aclb")),
            ("demo_shop", None),
            ("@aclb", None),
            ("shop@", None),
            ("a@b@c", None),
            ("", None),
            ("averyveryveryverylongaccountname@aclb", None),
            ("shöp@aclb", None),
        ] {
            let e = check_account_id(bad).expect_err(bad).0;
            assert!(e.contains(&format!("{bad:?}")), "quotes the value: {e}");
            if let Some(h) = hint {
                assert!(e.contains(&format!("{h:?}")), "suggests {h}: {e}");
            }
            let err =
                load_text(&format!("[bakong]\naccount_id = {}\n", toml_str(bad))).expect_err(bad);
            assert_eq!(err.key.as_deref(), Some("bakong.account_id"), "{err}");
        }
    }

    #[test]
    fn an_email_with_white_space_is_refused() {
        for bad in [
            "shop@example.com ",
            " shop@example.com",
            "shop @example.com",
            "a@b@c",
        ] {
            let e = load_text(&format!("[bakong]\nemail = {}\n", toml_str(bad))).expect_err(bad);
            assert_eq!(e.key.as_deref(), Some("bakong.email"), "{e}");
        }
    }

    #[test]
    fn urls_are_shown_without_their_credentials() {
        for (url, shown) in [
            (
                "http://opsuser:S3cretPass@127.0.0.1:99999",
                "http://opsuser:***@127.0.0.1:99999",
            ),
            (
                "http://opsuser:S3cretPass@proxy:3128/",
                "http://opsuser:***@proxy:3128/",
            ),
            (
                "postgres://app:S3cretPass@db/payments?sslmode=require",
                "postgres://app:***@db/payments?sslmode=require",
            ),
            (
                "postgres://db/payments?user=app&password=S3cretPass",
                "postgres://db/payments?user=app&password=***",
            ),
            (
                "https://S3cretPass@relay.example/bakong",
                "https://***@relay.example/bakong",
            ),
            (
                "https://relay.example/hook?token=S3cretPass#x",
                "https://relay.example/hook?token=***#x",
            ),
            ("opsuser:S3cretPass@proxy:3128", "opsuser:***@proxy:3128"),
            ("https://u:p@ss:S3cretPass@host/", "https://u:***@host/"),
            (
                "sqlite:///var/lib/bakong-poller/payments.db",
                "sqlite:///var/lib/bakong-poller/payments.db",
            ),
            (
                "https://api-bakong.nbc.gov.kh",
                "https://api-bakong.nbc.gov.kh",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secrets_inside_free_text_are_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJl";
        for text in [
            "error sending request for url (http://u:S3cretPass@host/v1/x): refused".to_string(),
            "2 | proxy = \"http://u:S3cretPass@h:99999\" x".to_string(),
            "3 | token = \"S3cretPass\" oops".to_string(),
            "secret = S3cretPass".to_string(),
            format!("bad token {jwt} here"),
        ] {
            let r = redact_text(&text);
            assert!(
                !r.contains("S3cretPass") && !r.contains(jwt),
                "{text} -> {r}"
            );
        }
        assert_eq!(
            redact_text("token_file = \"/var/lib/t\""),
            "token_file = \"/var/lib/t\""
        );
    }

    #[test]
    fn config_errors_never_echo_a_password() {
        for text in [
            "[bakong]\nproxy = \"http://opsuser:S3cretPass@127.0.0.1:99999\"\n",
            "[bakong]\nproxy = \"http://opsuser:S3cretPass@127.0.0.1:3128\" oops\n",
            "[database]\nurl = \"postgres://app:S3cretPass@db/payments?sslmode=sometimes\"\n",
            "[database]\nurl = \"mysql://app:S3cretPass@db/payments\"\n",
            "[bakong]\nbase_url = \"http://opsuser:S3cretPass@127.0.0.1:99999\"\n",
            "[bakong]\ntoken = \"S3cretPass\" oops\n",
        ] {
            let e = load_text(text).expect_err(text);
            assert!(!e.to_string().contains("S3cretPass"), "{e}");
            assert!(!format!("{e:?}").contains("S3cretPass"), "{e:?}");
            assert_eq!(e.to_string().lines().count(), 1, "one line: {e}");
        }
    }

    #[test]
    fn webhooks_and_the_hook_are_accepted_with_a_postgres_database() {
        let mut s = Settings::default();
        s.database.url = "postgres://app@db/payments".into();
        s.webhook.url = Some("https://shop.example/bakong".into());
        s.webhook.secret = WebhookSecrets::Many(vec![format!("whsec_{}", "A".repeat(44))]);
        s.hook.command = Some(vec!["/usr/local/bin/on-payment".into()]);
        let problems: Vec<String> = s.problems().iter().map(|e| e.to_string()).collect();
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("webhook") || p.contains("hook.command")),
            "{problems:?}"
        );
    }

    #[test]
    fn debug_output_hides_urls_credentials() {
        let mut s = Settings::default();
        s.bakong.proxy = Some("http://u:S3cretPass@proxy:3128".into());
        s.bakong.base_url = "https://u:S3cretPass@relay.example".into();
        s.database.url = "postgres://u:S3cretPass@db/x".into();
        assert!(!format!("{s:?}").contains("S3cretPass"));
    }

    #[test]
    fn merchant_keys_are_checked_at_start_and_name_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        for (toml, key) in [
            (
                "[merchant]\nname = \"ABCDEFGHIJKLMNOPQRSTUVWXYZ\"\n",
                "merchant.name",
            ),
            (
                "[merchant]\naccount_id = \"no-at-sign\"\n",
                "merchant.account_id",
            ),
            ("[merchant]\nmcc = \"59a9\"\n", "merchant.mcc"),
            (
                "[merchant]\naccount_type = \"merchant\"\naccount_id = \"a@b\"\n",
                "merchant.merchant_id",
            ),
            (
                "[merchant]\nlanguage_preference = \"km\"\n",
                "merchant.alternate_name",
            ),
            ("[merchant]\naccount_type = \"shop\"\n", "account_type"),
            ("[merchant]\ncolour = \"red\"\n", "colour"),
            (
                "[bakong]\naccount_id = \"a@b\"\n[merchant]\naccount_id = \"c@d\"\n",
                "merchant.account_id (\"c@d\") and bakong.account_id",
            ),
        ] {
            std::fs::write(&p, toml).expect("write");
            let e = Settings::load(Some(&p)).expect_err(toml);
            assert!(e.to_string().contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn the_receiver_is_the_merchant_account_or_the_bakong_one() {
        let mut s = Settings::default();
        assert_eq!(s.receiver_account(), None);
        s.bakong.account_id = Some("a@b".into());
        assert_eq!(s.receiver_account(), Some("a@b"));
        s.merchant.account_id = Some("a@b".into());
        s.validate().expect("the same account twice is fine");
        s.bakong.account_id = None;
        assert_eq!(s.receiver_account(), Some("a@b"));
    }

    #[test]
    fn three_merchant_keys_make_an_individual_khqr_with_the_sdk_defaults() {
        let mut m = MerchantSettings::default();
        assert!(m.request().is_err());
        m.account_id = Some("shop@devb".into());
        m.name = Some("Shop".into());
        m.city = Some("Siem Reap".into());
        let r = m.request().expect("request");
        let qr = crate::khqr::encode(&r, chrono::Utc::now()).expect("encodes");
        assert_eq!(
            qr,
            "00020101021129130009shop@devb5204599953031165802KH5904Shop6009Siem Reap6304"
                .to_string()
                + &crate::khqr::crc_hex(
                    "00020101021129130009shop@devb5204599953031165802KH5904Shop6009Siem Reap6304"
                )
        );
    }

    #[test]
    fn a_mobile_number_with_a_plus_and_spaces_loads_with_a_warning_naming_key_and_characters() {
        let s = load_text(
            "[merchant]\naccount_id = \"shop@devb\"\nname = \"Shop\"\nmobile_number = \"+855 96 998 3479\"\n",
        )
        .expect("NBC's SDK accepts it, so it loads");
        let w = s.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "merchant.mobile_number");
        let text = w[0].to_string();
        assert!(
            text.starts_with("config key merchant.mobile_number: ")
                && text.contains("'+' and space")
                && text.contains("\"855969983479\""),
            "{text}"
        );
        let digits = load_text("[merchant]\nname = \"Shop\"\nmobile_number = \"855969983479\"\n")
            .expect("loads");
        assert!(digits.warnings().is_empty());
    }

    #[test]
    fn control_characters_in_merchant_labels_warn_and_values_the_sdk_refuses_do_not_load() {
        let s = load_text("[merchant]\nstore_label = \"Store\\n1\"\nterminal_label = \"T1\"\n")
            .expect("loads");
        let w = s.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "merchant.store_label");
        assert!(w[0].to_string().contains("line feed"), "{}", w[0]);
        // Too long for the SDK: a problem (exit 2), not a warning.
        let e = load_text("[merchant]\nmobile_number = \"+855 96 998 3479 ext 12345\"\n")
            .expect_err("26 characters");
        assert_eq!(e.key.as_deref(), Some("merchant.mobile_number"));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let mut s = Settings::default();
        s.bakong.token = Some("very-secret".into());
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
