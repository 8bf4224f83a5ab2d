//! Typed settings: built-in defaults, then the TOML file, then environment
//! variables `BAKONG_POLLER__<SECTION>__<KEY>`; [`Settings::validate`] runs
//! once right after loading and names the key of every problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bakong::token::{read_token_file, Candidate, TokenChoice, TokenError, TokenSource};
use crate::bakong::{ClientConfig, GateConfig, Token, TokenConfig, PRODUCTION_URL};
use crate::khqr::{Account, AccountKind, KhqrRequest};

/// The commented example config, embedded in the binary (`print-config`).
pub const EXAMPLE: &str = include_str!("../config/bakong-poller.toml");

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
        let need = |v: &Option<String>, key: &str, ph: &str| {
            match v {
            Some(v) => Ok(v.clone()),
            None if placeholder => Ok(ph.to_string()),
            None => Err(ConfigError(format!(
                "config key merchant.{key} is not set: a KHQR needs it (see `bakong-poller print-config`)"
            ))),
        }
        };
        let account_id = need(&self.account_id, "account_id", "x@x")?;
        let account = match self.account_type {
            AccountKind::Individual => {
                for (key, v) in [("merchant_id", &self.merchant_id)] {
                    if v.is_some() {
                        return Err(ConfigError(format!(
                            "config key merchant.{key}: only a merchant account has one; set merchant.account_type = \"merchant\" or remove it"
                        )));
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
                    return Err(ConfigError(
                        "config key merchant.account_information: only an individual account has it; a merchant account has merchant.merchant_id".into(),
                    ));
                }
                let required = |v: &Option<String>, key: &str| {
                    v.clone().ok_or_else(|| {
                        ConfigError(format!(
                            "config key merchant.{key} is required with merchant.account_type = \"merchant\""
                        ))
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
            Err(ConfigError(format!("config key {key}: {e}")))
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH`.
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

impl std::fmt::Debug for BakongSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BakongSettings")
            .field("base_url", &self.base_url)
            .field("email", &self.email)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("token_file", &self.token_file)
            .field("account_id", &self.account_id)
            .field("timeout", &self.timeout)
            .field("proxy", &self.proxy)
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
    /// In bulk mode, how long due payments may gather before a request
    /// that is not full (50) goes out.
    #[serde(with = "humantime_serde")]
    pub bulk_flush: Duration,
    /// How long shutdown waits for writes in hand.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
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
            bulk_flush: Duration::from_millis(500),
            shutdown_timeout: Duration::from_secs(8),
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

/// A config problem, naming the key or file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads defaults, then `path` (if given), then the environment, and
    /// validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder();
        if let Some(p) = path {
            if !p.is_file() {
                return Err(ConfigError(format!(
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
        let built = b.build().map_err(|e| ConfigError(format!("config: {e}")))?;
        let mut s: Settings = built
            .try_deserialize()
            .map_err(|e| ConfigError(format!("config: {e}")))?;
        s.origin = Origin {
            file: path.map(Path::to_path_buf),
            token_from_env: std::env::var_os("BAKONG_POLLER__BAKONG__TOKEN").is_some(),
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks every value and names the key of the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("config key {key}: {why}")));
        if self.database_path().is_none() {
            return bad(
                "database.url",
                format!("{:?} is not of the form sqlite://PATH", self.database.url),
            );
        }
        let base = &self.bakong.base_url;
        if !(base.starts_with("https://") || base.starts_with("http://"))
            || reqwest::Url::parse(base).is_err()
        {
            return bad("bakong.base_url", format!("{base:?} is not an http(s) URL"));
        }
        if let Some(e) = &self.bakong.email {
            if e.is_empty() || e.chars().count() > 30 || !e.contains('@') {
                return bad(
                    "bakong.email",
                    format!("{e:?} is not an email of at most 30 characters"),
                );
            }
        }
        if let Some(t) = &self.bakong.token {
            if !t.is_empty() && Token::new(t).is_none() {
                return bad(
                    "bakong.token",
                    "holds white space or control characters".into(),
                );
            }
        }
        if self.bakong.token_file.as_os_str().is_empty() {
            return bad("bakong.token_file", "must be a path".into());
        }
        if let Some(p) = &self.bakong.proxy {
            if reqwest::Url::parse(p).is_err() {
                return bad("bakong.proxy", format!("{p:?} is not a URL"));
            }
        }
        if let Some(a) = &self.bakong.account_id {
            if a.is_empty() || !a.contains('@') {
                return bad(
                    "bakong.account_id",
                    format!("{a:?} is not a Bakong account id (name@bank)"),
                );
            }
        }
        if self.merchant.is_set() {
            check_merchant(&self.merchant.request_with(true)?)?;
        }
        if let (Some(m), Some(b)) = (&self.merchant.account_id, &self.bakong.account_id) {
            if m != b {
                return Err(ConfigError(format!(
                    "config keys merchant.account_id ({m:?}) and bakong.account_id ({b:?}) differ: the daemon checks one receiver; set one of them, or the same account in both"
                )));
            }
        }
        let p = &self.poller;
        if !(p.max_requests_per_second.is_finite() && p.max_requests_per_second > 0.0) {
            return bad(
                "poller.max_requests_per_second",
                format!("{} must be a positive number", p.max_requests_per_second),
            );
        }
        if p.concurrency == 0 || p.concurrency > 256 {
            return bad(
                "poller.concurrency",
                format!("{} must be 1 to 256", p.concurrency),
            );
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            return bad(
                "poller.jitter",
                format!("{} must be between 0.0 and 1.0", p.jitter),
            );
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
        ] {
            if d.is_zero() {
                return bad(key, "must be longer than zero".into());
            }
        }
        if p.max_interval < p.fresh_interval {
            return bad(
                "poller.max_interval",
                "must not be shorter than poller.fresh_interval".into(),
            );
        }
        if p.error_backoff_max < p.error_backoff_min {
            return bad(
                "poller.error_backoff_max",
                "must not be shorter than poller.error_backoff_min".into(),
            );
        }
        if p.rate_backoff_max < p.rate_backoff_min {
            return bad(
                "poller.rate_backoff_max",
                "must not be shorter than poller.rate_backoff_min".into(),
            );
        }
        if p.lease <= self.bakong.timeout {
            return bad(
                "poller.lease",
                "must be longer than bakong.timeout, or a slow check would be taken twice".into(),
            );
        }
        if p.shutdown_timeout > Duration::from_secs(9) {
            return bad(
                "poller.shutdown_timeout",
                "must be at most 9s: the daemon promises to exit within 10s".into(),
            );
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return bad(
                "log.level",
                format!("{:?} is not a tracing filter", self.log.level),
            );
        }
        Ok(())
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
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| format!("cannot write settings as TOML: {e}"))
    }

    /// The database file path from `database.url`.
    pub fn database_path(&self) -> Option<PathBuf> {
        let rest = self.database.url.strip_prefix("sqlite://")?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// The token candidates: `bakong.token`, the systemd credential
    /// (`$CREDENTIALS_DIRECTORY/token`, the one place that reads that
    /// variable) and `bakong.token_file`, each with when its source was
    /// last written.
    pub fn token_candidates(&self) -> Result<Vec<Candidate>, TokenError> {
        let mtime = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(chrono::DateTime::<chrono::Utc>::from)
        };
        let mut out = Vec::new();
        if let Some(token) = self.config_token() {
            let (source, written) = if self.origin.token_from_env {
                (TokenSource::Environment, Some(crate::process_start()))
            } else {
                (
                    TokenSource::Config,
                    self.origin.file.as_deref().and_then(mtime),
                )
            };
            out.push(Candidate {
                token,
                source,
                written,
            });
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = PathBuf::from(dir).join("token");
            if let Some((token, m)) = read_token_file(&p)? {
                out.push(Candidate {
                    token,
                    source: TokenSource::Credential(p),
                    written: m.map(Into::into),
                });
            }
        }
        let p = &self.bakong.token_file;
        if let Some((token, m)) = read_token_file(p)? {
            out.push(Candidate {
                token,
                source: TokenSource::File(p.clone()),
                written: m.map(Into::into),
            });
        }
        Ok(out)
    }

    /// The token used at start, by the contract's rule ("Which token is
    /// used"), with why.
    pub fn token_choice(&self) -> Result<Option<TokenChoice>, TokenError> {
        Ok(crate::bakong::token::choose(
            self.token_candidates()?,
            chrono::Utc::now(),
        ))
    }

    /// How the token manager renews.
    pub fn token_config(&self) -> TokenConfig {
        TokenConfig {
            email: self.bakong.email.clone(),
            renew_before: self.bakong.renew_before,
            renew_retry: self.poller.renew_retry,
        }
    }

    /// The configured token, if any.
    pub fn config_token(&self) -> Option<Token> {
        self.bakong.token.as_deref().and_then(Token::new)
    }

    /// The API client settings.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.bakong.base_url.clone(),
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
    fn debug_output_hides_the_token() {
        let mut s = Settings::default();
        s.bakong.token = Some("very-secret".into());
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
