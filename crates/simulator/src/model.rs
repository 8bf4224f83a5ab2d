//! The simulator's settings, faults, scenario file and registered data.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use bakong_khqr::money::Currency;

/// How a 429 tells the client when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryAfterMode {
    /// `Retry-After: N` (seconds).
    #[default]
    Seconds,
    /// `Retry-After: <HTTP-date>`.
    Date,
    /// No `Retry-After` header.
    None,
}

/// A token-bucket request-rate limit over all `/v1` endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Bucket size.
    #[serde(default = "one")]
    pub burst: u32,
    /// How 429s announce the wait.
    #[serde(default)]
    pub retry_after: RetryAfterMode,
    /// A fixed Retry-After in seconds instead of the bucket's own wait.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

fn one() -> u32 {
    1
}

/// Faults, settable at start (scenario) and at run time (control API).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Request-rate limit; none when absent.
    pub rate_limit: Option<RateLimit>,
    /// The next N requests answer 429 whatever the bucket says.
    pub force_429: u32,
    /// How forced 429s announce the wait.
    pub force_429_retry_after: RetryAfterMode,
    /// Seconds announced by forced 429s (default 1).
    pub force_429_secs: Option<u64>,
    /// Share of requests answered with a 5xx (0.0 to 1.0).
    pub error_5xx_ratio: f64,
    /// Share of requests answered with truncated JSON.
    pub malformed_ratio: f64,
    /// Share of requests that hang until the client gives up.
    pub hang_ratio: f64,
    /// Latency added to every request.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// HTML 403 for every request (the geo-block seen outside Cambodia).
    pub geo_block: bool,
    /// HTML 403 on check_transaction_by_md5_list only.
    pub md5_list_closed: bool,
    /// check_transaction_by_md5_list answers a bare HTML 403 (not 401) to a
    /// refused token, as production does for an expired one.
    pub list_403_for_refused_token: bool,
    /// Every endpoint answers a refused token with a bare HTML 403 (as the
    /// live service may answer a revoked token, exactly like a geo-block).
    pub all_403_for_refused_token: bool,
    /// request_token answers errorCode 7 (email server down).
    pub email_down: bool,
    /// 401s carry no JSON body (as some live endpoints do).
    pub bare_401: bool,
    /// The daily quota: after this many requests with a token in one
    /// simulated day, every such request answers HTTP 200 with errorCode 17
    /// ("Daily request limit of N exceeded"), as the live service does.
    pub daily_limit: Option<u64>,
    /// The simulated day's length (default 24h; tests use seconds). Days
    /// count from when the faults were set.
    #[serde(with = "humantime_serde::option")]
    pub day_length: Option<Duration>,
    /// The quota answers HTTP 429 with the same message instead of errorCode 17.
    pub daily_limit_429: bool,
    /// The quota's answer carries its message with `"errorCode": null`, as
    /// some clients' fixtures show.
    pub daily_limit_without_code: bool,
}

/// Settings of the token life cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Lifetime of issued tokens.
    #[serde(with = "humantime_serde")]
    pub token_lifetime: Duration,
    /// Whether a renewal revokes the tokens issued before it.
    pub revoke_on_renew: bool,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            token_lifetime: Duration::from_secs(90 * 86400),
            revoke_on_renew: false,
        }
    }
}

/// What the simulated customer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    /// Pays after `after`.
    #[default]
    Paid,
    /// The transaction fails after `after` (errorCode 3).
    Failed,
    /// Never pays (always not found).
    Never,
}

/// A payment to simulate: by md5 (with amount and currency) or by a full
/// KHQR string (amount, currency and receiver read from it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewTransaction {
    /// md5 of the KHQR string.
    pub md5: Option<String>,
    /// The full KHQR string.
    pub qr: Option<String>,
    /// A fixed transaction hash (64 hex); generated when absent.
    pub hash: Option<String>,
    /// Expected amount (from the QR when `qr` is given).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    /// Expected currency.
    pub currency: Option<Currency>,
    /// Receiver account.
    pub to_account: Option<String>,
    /// Payer account.
    pub from_account: Option<String>,
    /// Description reported.
    pub description: Option<String>,
    /// `createdDateMs` reported (any integer, for odd answers); the time
    /// it is paid when absent. `acknowledgedDateMs` is 250 ms later.
    pub created_date_ms: Option<i64>,
    /// What happens.
    pub outcome: OutcomeKind,
    /// When it happens, from registration.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// Paid a different amount.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub paid_amount: Option<Decimal>,
    /// Paid in a different currency.
    pub paid_currency: Option<Currency>,
    /// Paid to a different receiver.
    pub paid_to: Option<String>,
}

/// What registering a transaction gives back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    /// md5.
    pub md5: String,
    /// Full hash (64 hex).
    pub hash: String,
    /// First 8 characters of the hash.
    pub short_hash: String,
    /// Instruction reference.
    pub instruction_ref: String,
    /// External reference.
    pub external_ref: String,
}

/// The scenario file (TOML).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Token settings.
    pub settings: SimSettings,
    /// Faults at start.
    pub faults: Faults,
    /// Emails registered at start.
    pub registrations: Vec<Registration>,
    /// Known Bakong accounts.
    pub accounts: Vec<String>,
    /// Payments.
    pub transactions: Vec<NewTransaction>,
}

/// A registered email.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    /// Email.
    pub email: String,
    /// Write an issued token to this file at start (for demos).
    pub token_file: Option<std::path::PathBuf>,
}

impl Scenario {
    /// Reads a scenario file; the error names the file and the problem.
    pub fn load(path: &std::path::Path) -> Result<Self, super::SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("scenario {}: {e}", path.display()))?;
        Ok(toml::from_str(&text).map_err(|e| format!("scenario {}: {e}", path.display()))?)
    }
}
