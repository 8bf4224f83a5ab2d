//! The access token and the one manager that owns its life: the choice of
//! the token at start (the contract's "Which token is used"), the current
//! token and its generation, renewal as a single flight with one backoff
//! policy, the renew-ahead task, and where a renewed token is kept.
//!
//! Requests ask [`TokenManager::current`] for the token after the rate gate
//! has let them go, so a request that waited through a renewal leaves with
//! the new token; one refused with generation `g` asks
//! [`TokenManager::refresh`]`(g)`, which renews only if nobody did since.
//!
//! Daemons sharing a PostgreSQL database share the token too, through a
//! [`SharedKeep`] (the store's `api_token` row, wired in `app.rs`; this
//! module never sees the store): a renewal is single-flight in the process
//! first, then across the daemons under the keep's lock, and under that
//! lock a token another daemon renewed since ours was refused is used
//! instead of renewing again, so a Bakong that revokes the previous token
//! on renewal never sets the daemons renewing in turn. Each daemon also
//! reads the shared token every [`SHARED_CHECK`] to use a renewal made
//! elsewhere before its own requests are refused.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{Client, Error};

/// An access token. Its Debug output is redacted; the value is reachable
/// only through [`Token::expose`].
#[derive(Clone)]
pub struct Token(SecretString);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

impl Token {
    /// Wraps a token, trimming surrounding white space (files end in a newline).
    pub fn new(raw: &str) -> Option<Self> {
        let t = raw.trim();
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        Some(Token(SecretString::from(t.to_string())))
    }

    /// The raw token, for the Authorization header and the token file only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The `iat` and `exp` claims, if the token is a readable JWT.
    pub fn claims(&self) -> Claims {
        Claims::read(self.expose())
    }

    /// Whether the token is known to have expired at `now` (a JWT whose
    /// `exp` has passed). A token without readable dates is not known to.
    pub fn known_expired(&self, now: DateTime<Utc>) -> bool {
        self.claims().expires_at.is_some_and(|e| e <= now)
    }
}

/// The dates a JWT carries. Read without checking the signature: they only
/// steer the choice and renewal, and the server checks the token anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// Issued at.
    pub issued_at: Option<DateTime<Utc>>,
    /// Expires at.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    iat: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<serde_json::Value>,
}

impl Claims {
    fn read(jwt: &str) -> Claims {
        let mut v = jsonwebtoken::Validation::default();
        v.insecure_disable_signature_validation();
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let key = jsonwebtoken::DecodingKey::from_secret(&[]);
        let Ok(data) = jsonwebtoken::decode::<RawClaims>(jwt, &key, &v) else {
            return Claims::default();
        };
        let date = |n: Option<serde_json::Value>| {
            let n = n?;
            let secs = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?;
            Utc.timestamp_opt(secs, 0).single()
        };
        Claims {
            issued_at: date(data.claims.iat),
            expires_at: date(data.claims.exp),
        }
    }
}

/// A token file or credential that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file exists but cannot be read.
    #[error("cannot read token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold one token.
    #[error("{} does not hold a token (one line, no spaces)", path.display())]
    NotAToken {
        /// The file.
        path: PathBuf,
    },
    /// Saving failed.
    #[error("cannot save token to {}: {source}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token shared through the database could not be read, locked or
    /// written.
    #[error("the token in the database: {0}")]
    Shared(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a token file with its modification time; `Ok(None)` when it does
/// not exist or is empty.
pub fn read_token_file(path: &Path) -> Result<Option<(Token, Option<SystemTime>)>, TokenError> {
    warn_on_shared_dir(path);
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Ok(None),
        Ok(s) => {
            let token = Token::new(&s).ok_or_else(|| TokenError::NotAToken {
                path: path.to_path_buf(),
            })?;
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok(Some((token, mtime)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The token file's directory when others than its owner may write it:
/// then they can replace the token (a file's own mode does not stop a
/// rename or unlink in a writable directory). `None` when private, or when
/// it cannot be read (the read or the save names that).
pub fn shared_dir_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = token_dir(path);
    let mode = std::fs::metadata(dir).ok()?.permissions().mode();
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => "world-writable",
        (true, false) => "group-writable",
        (false, false) => return None,
    };
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Some(format!(
        "bakong.token_file: its directory {} is {who} (mode {:04o}): others can replace the token there; run `chmod go-w {}` (the unit's StateDirectoryMode=0750 does it), or keep the token in a private directory; see docs/src/operations/systemd.md, \"Run it as a systemd service\"",
        shown.display(),
        mode & 0o7777,
        shown.display()
    ))
}

/// Logs [`shared_dir_problem`] as a warning.
fn warn_on_shared_dir(path: &Path) {
    if let Some(why) = shared_dir_problem(path) {
        tracing::warn!(key = "bakong.token_file", "{why}");
    }
}

fn token_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Saves a token atomically with mode 0600: a temporary file beside it
/// (tempfile creates it 0600 with O_EXCL, so a symlink planted at its
/// name is never followed), fsync, rename over the old one (which replaces
/// a symlink at the token's name rather than writing through it), fsync of
/// the directory.
pub fn save_token_file(path: &Path, token: &Token) -> Result<(), TokenError> {
    use std::io::Write;
    warn_on_shared_dir(path);
    let err = |source| TokenError::Save {
        path: path.to_path_buf(),
        source,
    };
    let dir = token_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".token")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(token.expose().as_bytes()).map_err(err)?;
    tmp.write_all(b"\n").map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

/// Where a token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `bakong.token` in the config file (or the defaults).
    Config,
    /// `bakong.token` from the environment (`BAKONG_POLLER__BAKONG__TOKEN`).
    Environment,
    /// `bakong.token_file`.
    File(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/token` (systemd LoadCredential).
    Credential(PathBuf),
    /// A renewal by this process.
    Renewed,
    /// The token row in the database (PostgreSQL: shared by the daemons).
    Database,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Config => f.write_str("bakong.token"),
            TokenSource::Environment => f.write_str("bakong.token (BAKONG_POLLER__BAKONG__TOKEN)"),
            TokenSource::File(p) => write!(f, "bakong.token_file ({})", p.display()),
            TokenSource::Credential(p) => write!(f, "systemd credential ({})", p.display()),
            TokenSource::Renewed => f.write_str("renewal"),
            TokenSource::Database => f.write_str("the database (shared by the daemons)"),
        }
    }
}

/// A token found at start, with when its source was last written (for
/// tokens without readable dates).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The token.
    pub token: Token,
    /// Where it came from.
    pub source: TokenSource,
    /// When its source was last written: the file's modification time, the
    /// config file's for `bakong.token`, start-up for the environment.
    pub written: Option<DateTime<Utc>>,
}

/// The token chosen at start, and why.
#[derive(Debug, Clone)]
pub struct TokenChoice {
    /// The token.
    pub token: Token,
    /// Where it came from.
    pub source: TokenSource,
    /// When it counts as issued (JWT `iat`, else its source's write time).
    pub issued: Option<DateTime<Utc>>,
    /// Why it won, in a sentence.
    pub reason: String,
    /// Candidates dropped, each with why.
    pub dropped: Vec<String>,
}

/// The contract's rule: a token known to be expired is dropped; of the
/// rest the one issued last wins (a JWT's `iat`; a token with no readable
/// dates counts as issued when its source was last written). On a tie the
/// later candidate wins (the token file, where renewals are saved, comes
/// last).
pub fn choose(candidates: Vec<Candidate>, now: DateTime<Utc>) -> Option<TokenChoice> {
    let mut dropped = Vec::new();
    let mut live = Vec::new();
    for c in candidates {
        let claims = c.token.claims();
        match claims.expires_at {
            Some(exp) if exp <= now => {
                dropped.push(format!("{}: expired at {}", c.source, exp.to_rfc3339()))
            }
            _ => {
                let (issued, basis) = match claims.issued_at {
                    Some(iat) => (Some(iat), "its JWT iat"),
                    None => (
                        c.written,
                        "when its source was last written (no readable dates)",
                    ),
                };
                live.push((c, issued, basis));
            }
        }
    }
    let count = live.len();
    let (c, issued, basis) = live.into_iter().max_by_key(|(_, issued, _)| *issued)?;
    let when = issued.map_or_else(|| "unknown".to_string(), |d| d.to_rfc3339());
    let reason = if count == 1 {
        format!("the only usable token (issued {when}, by {basis})")
    } else {
        format!("the newest of {count} usable tokens (issued {when}, by {basis})")
    };
    Some(TokenChoice {
        token: c.token,
        source: c.source,
        issued,
        reason,
        dropped,
    })
}

/// Where a renewed token is kept: the token file today, the database when
/// several daemons share one. The manager's only dependency for storage.
pub trait TokenKeep: Send + Sync + std::fmt::Debug {
    /// Saves a renewed token.
    fn save(&self, token: &Token) -> Result<(), TokenError>;
    /// Where, for logs.
    fn describe(&self) -> String;
    /// The token kept there now (someone else, e.g. an operator's `token
    /// renew`, may have written a newer one); `None` when there is none or
    /// it cannot be read.
    fn load(&self) -> Option<Token> {
        None
    }
}

/// Keeps the token in a file (mode 0600, replaced atomically).
#[derive(Debug, Clone)]
pub struct FileKeep(pub PathBuf);

impl TokenKeep for FileKeep {
    fn save(&self, token: &Token) -> Result<(), TokenError> {
        save_token_file(&self.0, token)
    }
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
    fn load(&self) -> Option<Token> {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| Token::new(&s))
    }
}

/// A boxed future, so the shared keep can be async and still a trait object.
pub type KeepFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The token as a shared keep holds it.
#[derive(Debug, Clone)]
pub struct SharedToken {
    /// The token.
    pub token: Token,
    /// Bumped by every write: tells a newer token from one already seen.
    pub version: i64,
    /// When it was written.
    pub renewed: Option<DateTime<Utc>>,
    /// Who wrote it (host and pid), for the log.
    pub renewed_by: String,
}

/// A token kept where several daemons share it (the database on
/// PostgreSQL), with a lock that makes a renewal single-flight across them.
/// The manager depends on this trait only, never on the store.
pub trait SharedKeep: Send + Sync + std::fmt::Debug {
    /// Reads the shared token, without the lock.
    fn load(&self) -> KeepFuture<'_, Result<Option<SharedToken>, TokenError>>;
    /// Takes the renewal lock, waiting a bounded time for another holder.
    /// The lock dies with this process, so a killed holder frees it.
    fn lock(&self) -> KeepFuture<'_, Result<Box<dyn RenewalLock>, TokenError>>;
    /// Where, for logs.
    fn describe(&self) -> String;
}

/// The renewal lock of a [`SharedKeep`], held across the renewal.
pub trait RenewalLock: Send {
    /// Reads the shared token under the lock.
    fn load(&mut self) -> KeepFuture<'_, Result<Option<SharedToken>, TokenError>>;
    /// Writes `token` as the shared one and releases the lock; returns the
    /// new version.
    fn save(self: Box<Self>, token: Token) -> KeepFuture<'static, Result<i64, TokenError>>;
    /// Releases the lock without writing.
    fn release(self: Box<Self>) -> KeepFuture<'static, ()>;
}

/// How often a daemon sharing its token reads the shared one, to use a
/// renewal made elsewhere before its own requests are refused.
pub const SHARED_CHECK: Duration = Duration::from_secs(2);

/// How the manager renews.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The registered email (renewal is impossible without it).
    pub email: Option<String>,
    /// Renew this long before `exp`.
    pub renew_before: Duration,
    /// First wait after a failed renewal; doubles, capped at an hour.
    pub renew_retry: Duration,
}

struct Flight {
    backoff: ExponentialBackoff,
    /// After a failure: no attempt before this instant, and why.
    cooling: Option<(tokio::time::Instant, String)>,
    failures: u32,
    /// The generation this process last renewed, and when.
    renewed_here: Option<(u64, tokio::time::Instant)>,
    /// Refusals of a token this process had just renewed, in a row.
    contests: u32,
}

/// A token this process renewed that is refused within this long was
/// revoked by another client renewing the same email (tokens live 90 days).
pub const CONTEST_WINDOW: Duration = Duration::from_secs(1800);

/// A token refused this close to its `exp` (or after it) expired; it was
/// not revoked by another client's renewal (a host clock a little behind
/// the API's must not turn an expiry into a contest).
const EXPIRY_LEEWAY: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// The first wait before renewing again after such a refusal; it doubles
/// with each one in a row, up to an hour.
pub const CONTEST_BACKOFF: Duration = Duration::from_secs(120);

/// Owns the token. Shared by every request of a client.
pub struct TokenManager {
    current: RwLock<Option<(Token, u64)>>,
    flight: tokio::sync::Mutex<Flight>,
    builder: ExponentialBuilder,
    keep: Arc<dyn TokenKeep>,
    cfg: TokenConfig,
    renewals: AtomicU64,
    failed_renewals: AtomicU64,
    /// Refusals of a token this process had just renewed (another client
    /// renews the same email).
    contested: AtomicU64,
    /// Tokens taken from the keep (written there by someone else).
    taken_from_keep: AtomicU64,
    /// The token shared with other daemons, if any.
    shared: Option<Arc<dyn SharedKeep>>,
    /// The newest version of the shared token this process has seen
    /// (read or written); -1 before any.
    shared_seen: AtomicI64,
    /// Renewals made by another daemon and taken over from the shared keep.
    adopted: AtomicU64,
}

/// What a renewal attempt ended with.
enum Renewed {
    /// This process renewed through the API.
    Here(u64),
    /// Another daemon had renewed already: its token was installed (and
    /// logged as such).
    Elsewhere,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("generation", &self.generation())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager starting from `initial`, keeping renewals in `keep`.
    pub fn new(initial: Option<Token>, keep: Arc<dyn TokenKeep>, cfg: TokenConfig) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(cfg.renew_retry)
            .with_max_delay(Duration::from_secs(3600).max(cfg.renew_retry))
            .with_factor(2.0)
            .without_max_times();
        TokenManager {
            current: RwLock::new(initial.map(|t| (t, 0))),
            flight: tokio::sync::Mutex::new(Flight {
                backoff: builder.build(),
                cooling: None,
                failures: 0,
                renewed_here: None,
                contests: 0,
            }),
            builder,
            keep,
            cfg,
            renewals: AtomicU64::new(0),
            failed_renewals: AtomicU64::new(0),
            contested: AtomicU64::new(0),
            taken_from_keep: AtomicU64::new(0),
            shared: None,
            shared_seen: AtomicI64::new(-1),
            adopted: AtomicU64::new(0),
        }
    }

    /// Shares the token through `shared` (the database on PostgreSQL):
    /// renewals take its lock and use a token another daemon renewed
    /// instead of renewing again. `seen` is the version of the shared token
    /// read at start (or written then), if any.
    pub fn with_shared(mut self, shared: Arc<dyn SharedKeep>, seen: Option<i64>) -> Self {
        self.shared = Some(shared);
        self.shared_seen = AtomicI64::new(seen.unwrap_or(-1));
        self
    }

    /// The shared keep, when the token is shared with other daemons.
    pub fn shared(&self) -> Option<&dyn SharedKeep> {
        self.shared.as_deref()
    }

    /// Renewals made by another daemon and taken over from the shared keep.
    pub fn adopted(&self) -> u64 {
        self.adopted.load(Ordering::Relaxed)
    }

    /// Refusals of a token this process had just renewed: another client
    /// renews the same `bakong.email`.
    pub fn contested(&self) -> u64 {
        self.contested.load(Ordering::Relaxed)
    }

    /// Newer tokens taken from the token file instead of renewing.
    pub fn taken_from_keep(&self) -> u64 {
        self.taken_from_keep.load(Ordering::Relaxed)
    }

    /// Whether `row` is a token to take over instead of the current one: a
    /// version this process has not seen yet, another token than
    /// `current` (the one refused, or in use), and not known to be expired.
    fn takes_over(&self, row: &SharedToken, current: Option<&Token>) -> bool {
        row.version > self.shared_seen.load(Ordering::Relaxed)
            && current.is_none_or(|t| t.expose() != row.token.expose())
            && !row.token.known_expired(Utc::now())
    }

    fn adopt(&self, row: SharedToken) -> u64 {
        self.shared_seen.fetch_max(row.version, Ordering::Relaxed);
        let generation = self.install(row.token);
        self.adopted.fetch_add(1, Ordering::Relaxed);
        info!(generation, version = row.version, renewed_by = %row.renewed_by, "using the access token another daemon renewed (from the database)");
        generation
    }

    /// Reads the shared token and uses it if another daemon renewed since
    /// this process last looked; returns whether it did. Errors are logged
    /// at debug level only: the next renewal reads the keep again.
    pub async fn check_shared(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let row = match shared.load().await {
            Ok(Some(row)) => row,
            Ok(None) => return false,
            Err(e) => {
                debug!(error = %e, "cannot read the shared token; trying again later");
                return false;
            }
        };
        let current = self.current().map(|(t, _)| t);
        if !self.takes_over(&row, current.as_ref()) {
            // Seen (e.g. our own write read back), nothing to do.
            if current.is_some_and(|t| t.expose() == row.token.expose()) {
                self.shared_seen.fetch_max(row.version, Ordering::Relaxed);
            }
            return false;
        }
        // Not during a renewal of this process: it reads the keep itself.
        let Ok(_flight) = self.flight.try_lock() else {
            return false;
        };
        let current = self.current().map(|(t, _)| t);
        if !self.takes_over(&row, current.as_ref()) {
            return false;
        }
        self.adopt(row);
        true
    }

    /// The current token and its generation (bumped by every renewal).
    pub fn current(&self) -> Option<(Token, u64)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The generation of the current token (0 before any renewal).
    pub fn generation(&self) -> u64 {
        self.current().map(|(_, g)| g).unwrap_or(0)
    }

    /// Whether renewal is possible at all (an email is configured).
    pub fn can_renew(&self) -> bool {
        self.cfg.email.is_some()
    }

    /// Renewals done by this manager.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// Renewals that failed.
    pub fn failed_renewals(&self) -> u64 {
        self.failed_renewals.load(Ordering::Relaxed)
    }

    /// Where renewed tokens are kept.
    pub fn keep(&self) -> &dyn TokenKeep {
        self.keep.as_ref()
    }

    fn install(&self, token: Token) -> u64 {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let generation = cur.as_ref().map(|(_, g)| g + 1).unwrap_or(1);
        *cur = Some((token, generation));
        generation
    }

    /// Renews the token unless another caller already did since `seen`
    /// (the generation the refused request carried). Exactly one renewal
    /// runs at a time; after a failure, attempts wait out one backoff
    /// (from `renew_retry`, doubling, capped at an hour) and fail at once
    /// meanwhile, saying when the next attempt is.
    pub async fn refresh(&self, seen: u64, client: &Client) -> Result<(), Error> {
        let mut flight = self.flight.lock().await;
        if self.current().is_some_and(|(_, g)| g != seen) {
            return Ok(());
        }
        if let Some((until, why)) = &flight.cooling {
            let now = tokio::time::Instant::now();
            if now < *until && self.shared.is_some() {
                // Cooling after a failure here; another daemon may have
                // renewed meanwhile.
                if let Some(shared) = &self.shared {
                    if let Ok(Some(row)) = shared.load().await {
                        let current = self.current().map(|(t, _)| t);
                        if self.takes_over(&row, current.as_ref()) {
                            self.adopt(row);
                            flight.cooling = None;
                            return Ok(());
                        }
                    }
                }
            }
            if now < *until {
                return Err(Error::Renewal(format!(
                    "{why} (next attempt in {})",
                    humantime::format_duration(Duration::from_secs((*until - now).as_secs() + 1))
                )));
            }
        }
        let refused = self.current().map(|(t, _)| t);
        // Someone else may have put a newer token in the keep (an
        // operator's `token renew`, another process on this host): use it
        // rather than renewing, which would revoke it.
        // On PostgreSQL the database's row is the shared keep (read under
        // its lock below); the file may hold an older one.
        let from_file = if self.shared.is_none() {
            self.keep.load()
        } else {
            None
        };
        if let Some(kept) = from_file {
            // Newer than the refused one: issued later, when both say.
            let newer = match (&refused, kept.claims().issued_at) {
                (Some(r), Some(k)) => r.claims().issued_at.is_none_or(|r| k >= r),
                _ => true,
            };
            if refused.as_ref().is_none_or(|r| r.expose() != kept.expose())
                && newer
                && !kept.known_expired(Utc::now())
            {
                let generation = self.install(kept);
                self.taken_from_keep.fetch_add(1, Ordering::Relaxed);
                info!(generation, file = %self.keep.describe(), "using the newer access token found in the token file (written by someone else) instead of renewing");
                return Ok(());
            }
        }
        // A token renewed here and refused soon after was revoked by
        // another client renewing the same email: renewing at once would
        // revoke that one's token in turn, for ever. Back off instead.
        if let Some((generation, at)) = flight.renewed_here {
            let now = tokio::time::Instant::now();
            // A token whose own `exp` has passed was refused for its age
            // (short-lived tokens, a long pause), not revoked: renew. With
            // some leeway, for a host clock behind the API's.
            let expired = refused
                .as_ref()
                .is_some_and(|t| t.known_expired(Utc::now() + EXPIRY_LEEWAY));
            // On a shared keep, a newer token there was renewed by another
            // daemon of this fleet (its renewal revoked ours): use it.
            if generation == seen && !expired {
                if let Some(shared) = &self.shared {
                    if let Ok(Some(row)) = shared.load().await {
                        if self.takes_over(&row, refused.as_ref()) {
                            self.adopt(row);
                            return Ok(());
                        }
                    }
                }
            }
            if generation == seen && !expired && now.duration_since(at) < CONTEST_WINDOW {
                flight.contests += 1;
                self.contested.fetch_add(1, Ordering::Relaxed);
                let wait = CONTEST_BACKOFF
                    .saturating_mul(1u32 << flight.contests.saturating_sub(1).min(5))
                    .min(Duration::from_secs(3600));
                let why = format!(
                    "the token this daemon renewed {} ago was refused: another client renews \
                     the same bakong.email, and each renewal revokes the other's token; give \
                     each deployment its own registered email, or let them share one database \
                     (PostgreSQL); renewals back off meanwhile",
                    humantime::format_duration(Duration::from_secs(
                        now.duration_since(at).as_secs()
                    ))
                );
                if flight.contests == 1 || flight.contests.is_power_of_two() {
                    error!(contests = flight.contests, retry_in = %humantime::format_duration(wait), "{why}");
                }
                flight.renewed_here = None;
                flight.cooling = Some((now + wait, why.clone()));
                return Err(Error::Renewal(why));
            }
            // Refused long after this daemon renewed it: an ordinary
            // expiry or revocation, not a contest.
            flight.contests = 0;
        }
        match self.renew_now(client).await {
            Ok(renewed) => {
                flight.backoff = self.builder.build();
                flight.cooling = None;
                flight.failures = 0;
                if let Renewed::Here(generation) = renewed {
                    flight.renewed_here = Some((generation, tokio::time::Instant::now()));
                    self.renewals.fetch_add(1, Ordering::Relaxed);
                    info!(generation, file = %self.keep.describe(), shared = self.shared.is_some(), "access token renewed and saved");
                }
                Ok(())
            }
            Err(e) => {
                let forbidden = matches!(e, Error::Forbidden { .. });
                let why = match e {
                    Error::Renewal(m) => m,
                    other => other.to_string(),
                };
                flight.failures += 1;
                self.failed_renewals.fetch_add(1, Ordering::Relaxed);
                let wait = flight.backoff.next().unwrap_or(Duration::from_secs(3600));
                if forbidden {
                    // renew_token refused at the gateway: the network, not
                    // the token (reported as such where the 403 is).
                    info!(error = %why, failures = flight.failures, retry_in = %humantime::format_duration(wait), "token renewal refused with HTTP 403");
                } else {
                    error!(error = %why, failures = flight.failures, retry_in = %humantime::format_duration(wait), "token renewal failed; payments stay pending");
                }
                flight.cooling = Some((tokio::time::Instant::now() + wait, why.clone()));
                Err(Error::Renewal(why))
            }
        }
    }

    async fn renew_now(&self, client: &Client) -> Result<Renewed, Error> {
        let email = self.cfg.email.as_deref().ok_or_else(|| {
            Error::Renewal("bakong.email is not set, so the token cannot be renewed".into())
        })?;
        let Some(shared) = &self.shared else {
            let token = client.renew_token(email).await?;
            // In use at once: Bakong may already have revoked the old token, so
            // a token that cannot be saved is still better than none.
            let saved = self.keep.save(&token);
            let generation = self.install(token);
            if let Err(e) = saved {
                error!(error = %e, "the renewed token is in use but could not be saved; a restart would use an older one");
            }
            return Ok(Renewed::Here(generation));
        };
        // Single flight across the daemons: under the lock, a token another
        // daemon renewed since ours was refused is used as it is. Renewing
        // again would revoke it (Bakong may revoke the previous token on
        // renewal) and the daemons would renew in turn without end. Without
        // the lock (the database unreachable) no renewal is made: it would
        // revoke the others' token, and this daemon cannot record results
        // anyway; the backoff retries.
        let mut lock = shared
            .lock()
            .await
            .map_err(|e| Error::Renewal(format!("{e}; renewal postponed")))?;
        let refused = self.current().map(|(t, _)| t);
        match lock.load().await {
            Ok(Some(row)) if self.takes_over(&row, refused.as_ref()) => {
                lock.release().await;
                self.adopt(row);
                return Ok(Renewed::Elsewhere);
            }
            Ok(_) => {}
            Err(e) => {
                lock.release().await;
                return Err(Error::Renewal(format!("{e}; renewal postponed")));
            }
        }
        info!(
            "renewing the access token for every daemon (holding the renewal lock in the database)"
        );
        let token = match client.renew_token(email).await {
            Ok(t) => t,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let written = lock.save(token.clone()).await;
        // The file too: harmless, and what `token show` reads on this host
        // if the database is out of reach.
        let file = self.keep.save(&token);
        let generation = self.install(token);
        match written {
            Ok(version) => {
                self.shared_seen.fetch_max(version, Ordering::Relaxed);
                if let Err(e) = file {
                    warn!(error = %e, "the renewed token is saved in the database but not in bakong.token_file");
                }
            }
            Err(e) => {
                error!(error = %e, "the renewed token is in use but could not be saved in the database; the other daemons will renew once more when theirs is refused");
            }
        }
        Ok(Renewed::Here(generation))
    }

    /// Renews ahead of the token's `exp` (by `bakong.renew_before`) until
    /// `shutdown`. A failed attempt is logged once (by [`Self::refresh`])
    /// and retried on the same backoff as any other renewal.
    pub async fn renew_ahead(self: Arc<Self>, client: Client, shutdown: CancellationToken) {
        let mut warned = false;
        // The renewal instant of the current generation, computed once per
        // generation (the shared check below wakes the loop up often).
        let mut planned: Option<(u64, Option<tokio::time::Instant>)> = None;
        loop {
            let current = self.current();
            let generation = current.as_ref().map_or(0, |(_, g)| *g);
            if planned.is_none_or(|(g, _)| g != generation) {
                let at = current.as_ref().and_then(|(token, generation)| {
                    let Some(exp) = token.claims().expires_at else {
                        debug!("token has no exp claim; renewal only when a request is refused");
                        return None;
                    };
                    let now = Utc::now();
                    let renew_before = chrono::Duration::from_std(self.cfg.renew_before)
                        .unwrap_or_else(|_| chrono::Duration::days(7));
                    // exp comes from the token: an absurd one must not
                    // overflow the date arithmetic.
                    let mut wait = exp
                        .checked_sub_signed(renew_before)
                        .map(|at| at - now)
                        .and_then(|d| d.to_std().ok())
                        .unwrap_or_default();
                    // A token whose whole life is shorter than
                    // renew_before would be renewed the moment it is
                    // read: at every start of every daemon of a fleet,
                    // revoking the token the others use (a restart loop
                    // renewed once per restart).
                    let short_lived = token
                        .claims()
                        .issued_at
                        .is_some_and(|iat| exp - iat <= renew_before);
                    if wait.is_zero() && (*generation > 0 || short_lived) {
                        // A token this process renewed (or took over) is
                        // already inside its renew_before window: the
                        // window is longer than the token's life. Renew
                        // halfway through instead of at once, or renewals
                        // would follow each other without end.
                        let life_left = (exp - now).to_std().unwrap_or_default();
                        wait = (life_left / 2).max(self.cfg.renew_retry);
                        if !warned {
                            tracing::warn!(renew_before = %humantime::format_duration(self.cfg.renew_before), token_life_left = %humantime::format_duration(Duration::from_secs(life_left.as_secs())), "bakong.renew_before is longer than a renewed token lives; renewing halfway through its life instead");
                            warned = true;
                        }
                    }
                    Some(tokio::time::Instant::now() + wait)
                });
                planned = Some((generation, at));
            }
            let at = planned.and_then(|(_, at)| at);
            if at.is_none() && self.shared.is_none() {
                // Nothing to plan, nobody else to watch.
                shutdown.cancelled().await;
                return;
            }
            let renew_at = async {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let check = async {
                match self.shared {
                    Some(_) => tokio::time::sleep(SHARED_CHECK).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = check => {
                    // A renewal made by another daemon is used before the
                    // API refuses the old token (or before this daemon's
                    // own renew-ahead would have fired).
                    self.check_shared().await;
                    continue;
                }
                _ = renew_at => {}
            }
            if self.refresh(generation, &client).await.is_err() {
                // Wait out the cooldown refresh set, then try again.
                let until = self
                    .flight
                    .lock()
                    .await
                    .cooling
                    .as_ref()
                    .map(|(u, _)| *u)
                    .unwrap_or_else(|| tokio::time::Instant::now() + self.cfg.renew_retry);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(iat: i64, exp: i64) -> Token {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let s = format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
            enc(serde_json::json!({"iat": iat, "exp": exp}))
        );
        Token::new(&s).expect("token")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("time")
    }

    fn cand(token: Token, source: TokenSource, written: i64) -> Candidate {
        Candidate {
            token,
            source,
            written: Some(at(written)),
        }
    }

    /// A shared keep in memory: `load` only (the lock is the database's
    /// business, tested in tests/it/pg_token.rs).
    #[derive(Debug, Default)]
    struct MemKeep(std::sync::Mutex<Option<SharedToken>>);

    impl SharedKeep for MemKeep {
        fn load(&self) -> KeepFuture<'_, Result<Option<SharedToken>, TokenError>> {
            let row = self.0.lock().expect("lock").clone();
            Box::pin(async move { Ok(row) })
        }
        fn lock(&self) -> KeepFuture<'_, Result<Box<dyn RenewalLock>, TokenError>> {
            Box::pin(async { Err(TokenError::Shared("no lock in memory".into())) })
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn shared(token: &Token, version: i64) -> SharedToken {
        SharedToken {
            token: token.clone(),
            version,
            renewed: None,
            renewed_by: "host pid 1".into(),
        }
    }

    #[tokio::test]
    async fn only_a_newer_unexpired_other_shared_token_is_taken_over() {
        let now = Utc::now().timestamp();
        let mine = jwt(now - 10, now + 3600);
        let keep = Arc::new(MemKeep::default());
        let cfg = TokenConfig {
            email: Some("shop@example.com".into()),
            renew_before: Duration::from_secs(60),
            renew_retry: Duration::from_millis(100),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let m = TokenManager::new(
            Some(mine.clone()),
            Arc::new(FileKeep(dir.path().join("t"))),
            cfg,
        )
        .with_shared(keep.clone(), Some(5));
        let is_mine = |m: &TokenManager| {
            m.current().map(|(t, _)| t.expose().to_string()) == Some(mine.expose().to_string())
        };
        // Nothing shared; a version already seen; the same token again.
        assert!(!m.check_shared().await);
        let other = jwt(now, now + 3600);
        *keep.0.lock().expect("lock") = Some(shared(&other, 5));
        assert!(!m.check_shared().await, "version 5 was seen at start");
        *keep.0.lock().expect("lock") = Some(shared(&mine, 6));
        assert!(!m.check_shared().await, "our own token, written back");
        // An expired token, however new its version: not taken.
        *keep.0.lock().expect("lock") = Some(shared(&jwt(now - 100, now - 1), 9));
        assert!(!m.check_shared().await);
        assert!(is_mine(&m));
        // A newer version with another live token: taken, once.
        *keep.0.lock().expect("lock") = Some(shared(&other, 10));
        assert!(m.check_shared().await);
        assert_eq!(m.generation(), 1);
        assert_eq!(m.adopted(), 1);
        assert_eq!(m.renewals(), 0, "taking over is not renewing");
        assert!(!m.check_shared().await, "version 10 is seen now");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = Token::new("secret-value-123").expect("token");
        assert!(!format!("{t:?}").contains("secret-value"));
    }

    #[test]
    fn claims_are_read_from_the_jwt() {
        let c = jwt(1_700_000_000, 1_707_776_000).claims();
        assert_eq!(c.issued_at.map(|d| d.timestamp()), Some(1_700_000_000));
        assert_eq!(c.expires_at.map(|d| d.timestamp()), Some(1_707_776_000));
        assert_eq!(
            Token::new("rbk_test_opaque").expect("t").claims(),
            Claims::default()
        );
    }

    #[test]
    fn a_token_directory_others_may_write_is_named_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        let chmod = |m| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        chmod(0o750);
        assert_eq!(shared_dir_problem(&file), None);
        chmod(0o2770);
        let why = shared_dir_problem(&file).expect("group-writable");
        assert!(
            why.contains("group-writable") && why.contains("chmod go-w"),
            "{why}"
        );
        chmod(0o757);
        let why = shared_dir_problem(&file).expect("world-writable");
        assert!(why.contains("world-writable"), "{why}");
        chmod(0o700);
    }

    #[test]
    fn a_symlink_at_the_token_name_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = dir.path().join("other");
        std::fs::write(&other, "keep\n").expect("write");
        let file = dir.path().join("token");
        std::os::unix::fs::symlink(&other, &file).expect("symlink");
        save_token_file(&file, &Token::new("abc.def.ghi").expect("token")).expect("saved");
        assert_eq!(std::fs::read_to_string(&other).expect("read"), "keep\n");
        assert!(!std::fs::symlink_metadata(&file)
            .expect("meta")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn the_file_is_saved_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        save_token_file(&file, &jwt(200, 300)).expect("save");
        save_token_file(&file, &jwt(201, 300)).expect("save again");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t, _) = read_token_file(&file).expect("read").expect("some");
        assert_eq!(t.claims().issued_at.map(|d| d.timestamp()), Some(201));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn the_newest_usable_token_wins() {
        let now = at(1_000);
        let file = TokenSource::File("/t".into());
        // By iat; a tie goes to the later candidate (the token file).
        let c = choose(
            vec![
                cand(jwt(100, 5_000), TokenSource::Config, 0),
                cand(jwt(200, 5_000), file.clone(), 0),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, file);
        let c = choose(
            vec![
                cand(jwt(400, 5_000), TokenSource::Config, 0),
                cand(jwt(200, 5_000), file.clone(), 0),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, TokenSource::Config);
        let c = choose(
            vec![
                cand(jwt(200, 5_000), TokenSource::Config, 0),
                cand(jwt(200, 5_000), file.clone(), 0),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, file, "tie: the file");
    }

    #[test]
    fn expired_tokens_are_dropped_and_opaque_ones_count_from_their_source() {
        let now = at(1_000_000);
        let opaque = Token::new("rbk_test_abc").expect("t");
        let file = TokenSource::File("/t".into());
        // An opaque relay token in the config beats an expired JWT in the file,
        // however new that JWT's iat.
        let c = choose(
            vec![
                cand(opaque.clone(), TokenSource::Config, 10),
                cand(jwt(999_000, 999_999), file.clone(), 999_000),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, TokenSource::Config);
        assert_eq!(c.dropped.len(), 1, "{:?}", c.dropped);
        assert!(c.dropped[0].contains("expired"), "{:?}", c.dropped);
        // Both live: an opaque token counts as issued when its source was written.
        let c = choose(
            vec![
                cand(opaque.clone(), TokenSource::Environment, 900_000),
                cand(jwt(800_000, 2_000_000), file.clone(), 999_999),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, TokenSource::Environment, "{}", c.reason);
        assert!(c.reason.contains("last written"), "{}", c.reason);
        let c = choose(
            vec![
                cand(opaque, TokenSource::Config, 700_000),
                cand(jwt(800_000, 2_000_000), file.clone(), 1),
            ],
            now,
        )
        .expect("one");
        assert_eq!(c.source, file, "{}", c.reason);
        // Only expired tokens: none.
        assert!(choose(vec![cand(jwt(1, 2), file, 1)], now).is_none());
    }
}
