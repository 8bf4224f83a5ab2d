//! A local Bakong Open API: every endpoint of the spec and the field's
//! extra ones, the token life cycle, simulated payments, faults on demand,
//! and statistics about how its client behaved (see docs/src/simulator.md).
//!
//! `/v1/<endpoint>` is the API; `/_sim/...` is the control API.

//!
//! A crate of its own (no dependency on the daemon), so that a client of
//! the Bakong Open API in any language can be tested against it.
#![forbid(unsafe_code)]
// A handler's early answer is an axum Response; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod api;
pub mod model;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use api::ENDPOINTS;
use bakong_khqr as khqr;
use bakong_khqr::money::Currency;

/// The most items the list endpoints take in one request (the API's limit).
pub const MAX_LIST: usize = 50;

/// Writes a token the way a client keeps one: the token and a newline, in
/// a file only its owner can read, replaced in one rename.
fn write_token_file(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".token").tempfile_in(dir)?;
    writeln!(tmp, "{token}")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
pub use model::*;

/// A simulated transaction.
#[derive(Debug, Clone, Serialize)]
pub struct SimTx {
    /// What was registered.
    #[serde(flatten)]
    pub ids: Registered,
    /// Expected amount.
    pub amount: Decimal,
    /// Expected currency.
    pub currency: Currency,
    /// Receiver.
    pub to_account: String,
    /// Payer.
    pub from_account: String,
    /// Description.
    pub description: Option<String>,
    /// `createdDateMs` reported instead of `at_ms`, when set.
    pub created_date_ms: Option<i64>,
    /// What happens.
    pub outcome: OutcomeKind,
    /// What is paid.
    pub paid_amount: Decimal,
    /// In what.
    pub paid_currency: Currency,
    /// To whom.
    pub paid_to: String,
    /// When it happens (unix ms).
    pub at_ms: i64,
    #[serde(skip)]
    at: Instant,
}

/// A mail "sent" by request_token.
#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    /// To.
    pub email: String,
    /// The 20-character verification code.
    pub code: String,
}

#[derive(Debug, Clone)]
struct TokenRecord {
    email: String,
    seq: u64,
    expires: Instant,
    revoked: bool,
}

/// The most request arrival times kept ([`Sim::arrivals`]).
pub const MAX_ARRIVALS: usize = 1_000_000;

/// How the simulator saw its client behave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests per endpoint and HTTP status.
    pub requests: HashMap<String, HashMap<u16, u64>>,
    /// All `/v1` requests.
    pub total: u64,
    /// 429 answers given.
    pub rate_limited: u64,
    /// Requests that arrived inside an announced Retry-After window.
    pub inside_retry_after: u64,
    /// Requests carrying a token older than one a later renewal issued.
    pub stale_token: u64,
    /// Most requests in flight at once.
    pub peak_concurrent: u64,
    /// Most requests within any one second.
    pub peak_rps: u64,
    /// Tokens issued by renew_token.
    pub renewals: u64,
    /// Tokens issued in all.
    pub tokens_issued: u64,
    /// Requests refused by the daily quota (errorCode 17).
    pub quota_refused: u64,
    /// md5s asked by a request while another request asking for the same
    /// md5 was still being answered (a client checking one payment twice
    /// at once: a wasted request, and two results for one row). A client's
    /// retry after its own timeout counts too: the simulator still answers
    /// the first request.
    pub asked_twice_at_once: u64,
    /// Milliseconds covered by the Retry-After windows announced
    /// (overlapping windows counted once): time the API was refusing.
    pub refusing_ms: u64,
}

struct Inner {
    settings: SimSettings,
    faults: Faults,
    limiter: Option<DefaultDirectRateLimiter>,
    window_end: Option<Instant>,
    registered: HashSet<String>,
    codes: HashMap<String, String>,
    mailbox: Vec<Mail>,
    tokens: HashMap<String, TokenRecord>,
    latest_renewal: HashMap<String, u64>,
    accounts: HashSet<String>,
    txs: Vec<SimTx>,
    by_md5: HashMap<String, usize>,
    by_hash: HashMap<String, usize>,
    recent: VecDeque<Instant>,
    /// Unix ms of each `/v1` request's arrival (the newest
    /// [`MAX_ARRIVALS`]), for tests that check when requests came.
    arrivals: VecDeque<i64>,
    stats: Stats,
    seq: u64,
    /// When the faults were set: simulated days count from here.
    quota_epoch: Instant,
    /// (day number, requests with a token that day).
    quota_used: (u64, u64),
}

/// The shared simulator state.
pub struct Sim {
    inner: Mutex<Inner>,
    secret: Vec<u8>,
    in_flight: AtomicU64,
    /// The md5s asked by requests still being answered, with their count.
    asking: Mutex<HashMap<String, u32>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

fn build_limiter(f: &Faults) -> Option<DefaultDirectRateLimiter> {
    let rl = f.rate_limit.as_ref()?;
    if !(rl.requests_per_second.is_finite() && rl.requests_per_second > 0.0) {
        return None;
    }
    let burst = std::num::NonZeroU32::new(rl.burst.max(1))?;
    Quota::with_period(Duration::from_secs_f64(1.0 / rl.requests_per_second))
        .map(|q| RateLimiter::direct(q.allow_burst(burst)))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sim {
    /// A simulator loaded with `scenario`.
    pub fn new(scenario: &Scenario, shutdown: CancellationToken) -> Result<Arc<Self>, SimError> {
        let sim = Arc::new(Sim {
            inner: Mutex::new(Inner {
                settings: scenario.settings.clone(),
                faults: Faults::default(),
                limiter: None,
                window_end: None,
                registered: HashSet::new(),
                codes: HashMap::new(),
                mailbox: Vec::new(),
                tokens: HashMap::new(),
                latest_renewal: HashMap::new(),
                accounts: HashSet::new(),
                txs: Vec::new(),
                by_md5: HashMap::new(),
                by_hash: HashMap::new(),
                recent: VecDeque::new(),
                arrivals: VecDeque::new(),
                stats: Stats::default(),
                seq: 0,
                quota_epoch: Instant::now(),
                quota_used: (0, 0),
            }),
            secret: rand::random::<[u8; 32]>().to_vec(),
            in_flight: AtomicU64::new(0),
            asking: Mutex::new(HashMap::new()),
            shutdown,
        });
        sim.set_faults(scenario.faults.clone());
        for a in &scenario.accounts {
            sim.add_account(a);
        }
        for r in &scenario.registrations {
            sim.register(&r.email);
            if let Some(path) = &r.token_file {
                let t = sim.issue_token(&r.email);
                write_token_file(path, &t)
                    .map_err(|e| format!("write the token to {}: {e}", path.display()))?;
            }
        }
        for (i, t) in scenario.transactions.iter().enumerate() {
            sim.add_transaction(t.clone())
                .map_err(|e| format!("transactions[{i}]: {e}"))?;
        }
        Ok(sim)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the faults (and resets the rate-limit bucket and any
    /// announced Retry-After window).
    pub fn set_faults(&self, f: Faults) {
        let mut g = self.lock();
        g.limiter = build_limiter(&f);
        g.window_end = None;
        if f.daily_limit != g.faults.daily_limit || f.day_length != g.faults.day_length {
            g.quota_epoch = Instant::now();
            g.quota_used = (0, 0);
        }
        g.faults = f;
    }

    /// The daily quota: counts a request that carries a token and returns
    /// the limit when it is over it.
    fn quota_check(&self, g: &mut Inner, now: Instant) -> Option<u64> {
        let limit = g.faults.daily_limit?;
        let day = g
            .faults
            .day_length
            .unwrap_or(Duration::from_secs(86_400))
            .max(Duration::from_millis(1));
        let n = (now.saturating_duration_since(g.quota_epoch).as_millis() / day.as_millis()) as u64;
        if g.quota_used.0 != n {
            g.quota_used = (n, 0);
        }
        if g.quota_used.1 >= limit {
            g.stats.quota_refused += 1;
            return Some(limit);
        }
        g.quota_used.1 += 1;
        None
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the token settings.
    pub fn set_settings(&self, s: SimSettings) {
        self.lock().settings = s;
    }

    /// Unix ms of each `/v1` request's arrival, oldest first.
    pub fn arrivals(&self) -> Vec<i64> {
        self.lock().arrivals.iter().copied().collect()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&self) {
        let mut g = self.lock();
        g.stats = Stats::default();
        g.recent.clear();
        g.arrivals.clear();
    }

    /// The mails sent so far.
    pub fn mailbox(&self) -> Vec<Mail> {
        self.lock().mailbox.clone()
    }

    /// Makes an account known to check_bakong_account.
    pub fn add_account(&self, id: &str) {
        self.lock().accounts.insert(id.to_string());
    }

    /// Registers an email as request_token + verify would.
    pub fn register(&self, email: &str) {
        self.lock().registered.insert(email.to_string());
    }

    /// Issues a token for `email` (registering it), as verify does.
    pub fn issue_token(&self, email: &str) -> String {
        let mut g = self.lock();
        g.registered.insert(email.to_string());
        self.mint(&mut g, email, false)
    }

    fn mint(&self, g: &mut Inner, email: &str, renewal: bool) -> String {
        g.seq += 1;
        let seq = g.seq;
        let lifetime = g.settings.token_lifetime;
        let iat = chrono::Utc::now().timestamp();
        let exp = iat + lifetime.as_secs_f64().ceil() as i64;
        let jti = format!("{seq}-{:08x}", rand::random::<u32>());
        let claims =
            serde_json::json!({ "iat": iat, "exp": exp, "jti": jti, "data": { "id": email } });
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
        .unwrap_or_default();
        if renewal {
            if g.settings.revoke_on_renew {
                for r in g.tokens.values_mut().filter(|r| r.email == email) {
                    r.revoked = true;
                }
            }
            g.latest_renewal.insert(email.to_string(), seq);
            g.stats.renewals += 1;
        }
        g.stats.tokens_issued += 1;
        g.tokens.insert(
            jti,
            TokenRecord {
                email: email.to_string(),
                seq,
                expires: Instant::now() + lifetime,
                revoked: false,
            },
        );
        token
    }

    /// Revokes every token issued to `email` (they answer 401 from now on).
    pub fn revoke_tokens(&self, email: &str) {
        let mut g = self.lock();
        for r in g.tokens.values_mut().filter(|r| r.email == email) {
            r.revoked = true;
        }
    }

    /// Registers a simulated payment.
    pub fn add_transaction(&self, t: NewTransaction) -> Result<Registered, SimError> {
        let (md5, amount, currency, to) = match (&t.md5, &t.qr) {
            (Some(_), Some(_)) => return Err("give md5 or qr, not both".into()),
            (None, None) => return Err("give md5 or qr".into()),
            (Some(m), None) => {
                if !khqr::is_md5(m) {
                    return Err(format!("md5 {m:?} is not 32 lowercase hex characters").into());
                }
                (
                    m.clone(),
                    t.amount.ok_or("amount is required with md5")?,
                    t.currency.ok_or("currency is required with md5")?,
                    t.to_account
                        .clone()
                        .unwrap_or_else(|| "merchant@devb".into()),
                )
            }
            (None, Some(qr)) => {
                let k = khqr::decode(qr).map_err(|e| e.to_string())?;
                (
                    khqr::md5_hex(qr),
                    t.amount
                        .or(k.amount)
                        .ok_or("the QR has no amount (static QR); give amount")?,
                    t.currency
                        .or(k.currency)
                        .ok_or("the QR has no currency; give currency")?,
                    t.to_account
                        .clone()
                        .or_else(|| k.account_id().map(str::to_string))
                        .unwrap_or_else(|| "merchant@devb".into()),
                )
            }
        };
        if amount <= Decimal::ZERO {
            return Err(format!("amount {amount} must be positive").into());
        }
        let mut g = self.lock();
        if g.by_md5.contains_key(&md5) {
            return Err(format!("md5 {md5} is already registered").into());
        }
        let n = g.txs.len();
        let hash = match &t.hash {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                h.to_ascii_lowercase()
            }
            Some(h) => return Err(format!("hash {h:?} is not 64 hex characters").into()),
            None => format!(
                "{}{}",
                khqr::md5_hex(&format!("{md5}:{n}:a")),
                khqr::md5_hex(&format!("{md5}:{n}:b"))
            ),
        };
        if g.by_hash.contains_key(&hash) {
            return Err(format!("hash {hash} is already registered").into());
        }
        let ids = Registered {
            short_hash: hash[..8].to_string(),
            instruction_ref: format!("IR{}", &hash[8..24]),
            external_ref: format!("EXT{n:010}"),
            hash: hash.clone(),
            md5: md5.clone(),
        };
        g.accounts.insert(to.clone());
        let tx = SimTx {
            ids: ids.clone(),
            amount,
            currency,
            from_account: t.from_account.unwrap_or_else(|| "customer@abaa".into()),
            description: t.description,
            created_date_ms: t.created_date_ms,
            outcome: t.outcome,
            paid_amount: t.paid_amount.unwrap_or(amount),
            paid_currency: t.paid_currency.unwrap_or(currency),
            paid_to: t.paid_to.unwrap_or_else(|| to.clone()),
            to_account: to,
            at_ms: now_ms() + t.after.as_millis() as i64,
            at: Instant::now() + t.after,
        };
        let from = tx.from_account.clone();
        g.accounts.insert(from);
        g.txs.push(tx);
        g.by_md5.insert(md5, n);
        g.by_hash.insert(hash, n);
        Ok(ids)
    }

    /// The customer pays a registered md5 (again) `after` from now: a
    /// failed or unpaid transaction turns paid, as when a customer retries
    /// or scans an old QR. Amount, currency and receiver stay as
    /// registered; `Err` if the md5 is unknown.
    pub fn pay_again(&self, md5: &str, after: Duration) -> Result<(), SimError> {
        let mut g = self.lock();
        let n = *g
            .by_md5
            .get(md5)
            .ok_or_else(|| format!("md5 {md5} is not registered"))?;
        let t = &mut g.txs[n];
        t.outcome = OutcomeKind::Paid;
        t.at_ms = now_ms() + after.as_millis() as i64;
        t.at = Instant::now() + after;
        Ok(())
    }

    /// All simulated transactions.
    pub fn transactions(&self) -> Vec<SimTx> {
        self.lock().txs.clone()
    }

    /// Token status for a bearer token: Ok(email) or the reason it is refused.
    fn check_token(&self, g: &mut Inner, bearer: Option<&str>) -> Result<(), &'static str> {
        let t = bearer.ok_or("missing token")?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            t,
            &jsonwebtoken::DecodingKey::from_secret(&self.secret),
            &v,
        )
        .map_err(|_| "invalid token")?;
        let jti = data
            .claims
            .get("jti")
            .and_then(|j| j.as_str())
            .ok_or("invalid token")?;
        let rec = g.tokens.get(jti).cloned().ok_or("unknown token")?;
        if g.latest_renewal
            .get(&rec.email)
            .is_some_and(|latest| rec.seq < *latest)
        {
            g.stats.stale_token += 1;
        }
        if rec.revoked {
            return Err("revoked token");
        }
        if Instant::now() >= rec.expires {
            return Err("expired token");
        }
        Ok(())
    }

    /// Opens (or extends) the announced Retry-After window to `end`,
    /// counting the time it newly covers.
    fn announce(g: &mut Inner, now: Instant, end: Instant) {
        let from = g.window_end.map_or(now, |e| e.max(now));
        let added = end.saturating_duration_since(from);
        g.stats.refusing_ms += u64::try_from(added.as_millis()).unwrap_or(u64::MAX);
        g.window_end = Some(g.window_end.map_or(end, |e| e.max(end)));
    }

    /// Rate limiting: `Some((retry_after header, window end))` when this
    /// request gets a 429.
    fn rate_check(&self, g: &mut Inner, now: Instant) -> Option<Option<String>> {
        if let Some(end) = g.window_end {
            if now < end {
                g.stats.inside_retry_after += 1;
                let secs = (end - now).as_secs_f64().ceil().max(1.0) as u64;
                return Some(Some(secs.to_string()));
            }
            g.window_end = None;
        }
        let (mode, secs) = if g.faults.force_429 > 0 {
            g.faults.force_429 -= 1;
            (
                g.faults.force_429_retry_after,
                g.faults.force_429_secs.unwrap_or(1),
            )
        } else {
            let limiter = g.limiter.as_ref()?;
            match limiter.check() {
                Ok(()) => return None,
                Err(not_until) => {
                    let rl = g.faults.rate_limit.as_ref()?;
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(
                        &governor::clock::DefaultClock::default(),
                    ));
                    let secs = rl
                        .retry_after_secs
                        .unwrap_or_else(|| wait.as_secs_f64().ceil().max(1.0) as u64);
                    (rl.retry_after, secs)
                }
            }
        };
        let header = match mode {
            RetryAfterMode::None => None,
            RetryAfterMode::Seconds => {
                Self::announce(g, now, now + Duration::from_secs(secs));
                Some(secs.to_string())
            }
            RetryAfterMode::Date => {
                // HTTP-dates are whole seconds: round the moment up.
                let target = SystemTime::now() + Duration::from_secs(secs);
                let since = target
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs() + 1);
                let ahead = whole.duration_since(SystemTime::now()).unwrap_or_default();
                Self::announce(g, now, now + ahead);
                Some(httpdate::fmt_http_date(whole))
            }
        };
        Some(header)
    }

    fn note_arrival(&self, g: &mut Inner, now: Instant) {
        g.stats.total += 1;
        if g.arrivals.len() >= MAX_ARRIVALS {
            g.arrivals.pop_front();
        }
        g.arrivals.push_back(chrono::Utc::now().timestamp_millis());
        g.recent.push_back(now);
        while g
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            g.recent.pop_front();
        }
        g.stats.peak_rps = g.stats.peak_rps.max(g.recent.len() as u64);
    }

    fn note_status(&self, endpoint: &str, status: u16) {
        let mut g = self.lock();
        *g.stats
            .requests
            .entry(endpoint.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if status == 429 {
            g.stats.rate_limited += 1;
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The state, for in-process control.
    pub sim: Arc<Sim>,
    shutdown: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://ADDR`, the value for `bakong.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.join.await;
    }
}

/// A simulator that cannot start or a registration it refuses; the
/// message names the field or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SimError(pub String);

impl From<String> for SimError {
    fn from(s: String) -> Self {
        SimError(s)
    }
}

impl From<&str> for SimError {
    fn from(s: &str) -> Self {
        SimError(s.to_string())
    }
}

/// Binds `listen` and serves until the handle stops it or `shutdown` fires.
pub async fn spawn(
    listen: SocketAddr,
    scenario: &Scenario,
    shutdown: CancellationToken,
) -> Result<SimHandle, SimError> {
    let shutdown = shutdown.child_token();
    let sim = Sim::new(scenario, shutdown.clone())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let app = router(sim.clone());
    let stop = shutdown.clone();
    let join = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(task = "simulator", error = %e, "simulator server failed");
        }
    });
    Ok(SimHandle {
        addr,
        sim,
        shutdown,
        join,
    })
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/{endpoint}", post(api::handle))
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/stats", get(ctl_stats))
        .route("/_sim/stats/reset", post(ctl_reset_stats))
        .route("/_sim/faults", get(ctl_get_faults).put(ctl_put_faults))
        .route("/_sim/settings", axum::routing::put(ctl_put_settings))
        .route("/_sim/transactions", get(ctl_list_tx).post(ctl_add_tx))
        .route("/_sim/mailbox", get(ctl_mailbox))
        .route("/_sim/accounts", post(ctl_add_account))
        .route("/_sim/tokens", post(ctl_issue_token))
        .route("/_sim/revoke", post(ctl_revoke))
        .route("/_sim/{*rest}", get(ctl_not_found).post(ctl_not_found))
        .with_state(sim)
}

type Ctl = axum::response::Response;

fn ctl_error(status: u16, msg: String) -> Ctl {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST),
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

fn ctl_json<T: Serialize>(v: T) -> Ctl {
    use axum::response::IntoResponse;
    Json(v).into_response()
}

fn parse_ctl<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Ctl> {
    serde_json::from_slice(body).map_err(|e| ctl_error(400, format!("bad control request: {e}")))
}

async fn ctl_not_found(Path(rest): Path<String>) -> Ctl {
    ctl_error(
        404,
        format!("no control endpoint /_sim/{rest}; see docs/src/simulator.md"),
    )
}
async fn ctl_stats(State(sim): State<Arc<Sim>>) -> Ctl {
    ctl_json(sim.stats())
}
async fn ctl_reset_stats(State(sim): State<Arc<Sim>>) -> Ctl {
    sim.reset_stats();
    ctl_json(serde_json::json!({ "ok": true }))
}
async fn ctl_get_faults(State(sim): State<Arc<Sim>>) -> Ctl {
    ctl_json(sim.faults())
}
async fn ctl_put_faults(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    match parse_ctl::<Faults>(&body) {
        Ok(f) => {
            sim.set_faults(f);
            ctl_json(sim.faults())
        }
        Err(e) => e,
    }
}
async fn ctl_put_settings(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    match parse_ctl::<SimSettings>(&body) {
        Ok(s) => {
            sim.set_settings(s.clone());
            ctl_json(s)
        }
        Err(e) => e,
    }
}
async fn ctl_list_tx(State(sim): State<Arc<Sim>>) -> Ctl {
    ctl_json(sim.transactions())
}
async fn ctl_add_tx(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    match parse_ctl::<NewTransaction>(&body) {
        Ok(t) => match sim.add_transaction(t) {
            Ok(r) => ctl_json(r),
            Err(e) => ctl_error(400, e.0),
        },
        Err(e) => e,
    }
}
async fn ctl_mailbox(State(sim): State<Arc<Sim>>) -> Ctl {
    ctl_json(sim.mailbox())
}
async fn ctl_add_account(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    #[derive(serde::Deserialize)]
    struct A {
        account_id: String,
    }
    match parse_ctl::<A>(&body) {
        Ok(a) => {
            sim.add_account(&a.account_id);
            ctl_json(serde_json::json!({ "ok": true }))
        }
        Err(e) => e,
    }
}
async fn ctl_issue_token(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    #[derive(serde::Deserialize)]
    struct E {
        email: String,
    }
    match parse_ctl::<E>(&body) {
        Ok(e) => ctl_json(serde_json::json!({ "token": sim.issue_token(&e.email) })),
        Err(e) => e,
    }
}
async fn ctl_revoke(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Ctl {
    #[derive(serde::Deserialize)]
    struct E {
        email: String,
    }
    match parse_ctl::<E>(&body) {
        Ok(e) => {
            sim.revoke_tokens(&e.email);
            ctl_json(serde_json::json!({ "ok": true }))
        }
        Err(e) => e,
    }
}
