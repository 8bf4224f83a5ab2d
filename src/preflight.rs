//! Pre-flight checks: what `config check` (the systemd unit's
//! `ExecStartPre=`) finds before the daemon starts, as a typed report of
//! problems and warnings, each naming its key.
//!
//! The line between the two is what `run` can do by itself. A problem is a
//! state `run` cannot get out of (a bad value, a database it cannot open, no
//! token, an expired token and no way to renew it): the check fails and the
//! unit does not start. A warning is a state `run` mends or works around
//! (an expired token with `bakong.email` set, a database file not created
//! yet, a journal mode not yet WAL, migrations not yet applied, a base URL
//! with `/v1` at its end): the check passes and says so once. Refusing those
//! would keep a service down that would have repaired itself.
//!
//! Nothing here changes anything: the database is opened without creating
//! it or switching its journal mode, and no request is sent unless asked
//! (`online`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::Utc;
use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::bakong::token::read_token_file;
use crate::bakong::Token;
use crate::config::{redact_text, Settings};

/// One finding: the key it is about and one line saying what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The config key (`bakong.token`, `database.url`, ...), or `config`
    /// for the file as a whole.
    pub key: String,
    /// What was found, and what to do or what the daemon will do.
    pub message: String,
}

impl Finding {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Finding {
            key: key.to_string(),
            message: redact_text(&message.into()),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// What the checks found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// States `run` cannot recover from: the daemon must not start.
    pub problems: Vec<Finding>,
    /// States `run` mends or works around by itself.
    pub warnings: Vec<Finding>,
}

impl Report {
    /// No problems (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Finding::new(key, message));
    }

    fn warning(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Finding::new(key, message));
    }
}

/// Loads the config at `path` (defaults and environment as `run` does) and
/// checks it, the database and the token. With `online`, also asks Bakong
/// whether `bakong.account_id` exists.
pub async fn check(path: Option<&Path>, online: bool) -> Report {
    match Settings::load_unchecked(path) {
        Ok(s) => check_settings(&s, online).await,
        Err(e) => {
            let mut r = Report::default();
            let key = e.key.clone().unwrap_or_else(|| "config".into());
            let msg = e
                .message
                .strip_prefix(&format!("config key {key}: "))
                .or_else(|| e.message.strip_prefix("config: "))
                .unwrap_or(&e.message);
            r.problem(&key, msg);
            r
        }
    }
}

/// Checks loaded settings, the database and the token.
pub async fn check_settings(settings: &Settings, online: bool) -> Report {
    let mut r = Report::default();
    for e in settings.problems() {
        let key = e.key.clone().unwrap_or_else(|| "config".into());
        // The message already names the key: strip the prefix, the key
        // field carries it.
        let prefix = format!("config key {key}: ");
        let msg = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
        r.problem(&key, msg);
    }
    for w in settings.warnings() {
        r.warning(w.key, w.message);
    }
    if let Some(path) = settings.database_path() {
        database(settings, &path, &mut r).await;
    }
    token(settings, &mut r);
    if online && r.is_ok() {
        account_online(settings, &mut r).await;
    }
    r
}

/// A directory where a file can be created (the check leaves nothing behind).
fn writable_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    tempfile::Builder::new()
        .prefix(".bakong-poller-check")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot create files in {}: {e}", dir.display()))
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Rows a KHQR cannot carry (see migration 3): the same rule in SQL.
const TOO_PRECISE: &str = "status = 'pending' AND typeof(amount) = 'text' \
     AND amount NOT GLOB '*[^0-9.]*' AND instr(amount, '.') > 0 \
     AND length(rtrim(substr(amount, instr(amount, '.') + 1), '0')) > \
     CASE currency WHEN 'KHR' THEN 0 ELSE 2 END";

async fn database(settings: &Settings, path: &Path, r: &mut Report) {
    let key = "database.url";
    if !path.exists() {
        let dir = parent_dir(path);
        match writable_dir(&dir) {
            Ok(()) => r.warning(
                key,
                format!(
                    "{} does not exist yet; run creates it and applies the migrations",
                    path.display()
                ),
            ),
            Err(e) => r.problem(
                key,
                format!(
                    "{} does not exist and cannot be created: {e} (create the directory, writable by the daemon's user)",
                    path.display()
                ),
            ),
        }
        return;
    }
    // Opened as is: never created, journal mode untouched.
    let opts = match SqliteConnectOptions::from_str(&settings.database.url) {
        Ok(o) => o
            .create_if_missing(false)
            .busy_timeout(settings.database.busy_timeout),
        Err(e) => {
            r.problem(key, format!("cannot read the URL: {e}"));
            return;
        }
    };
    let mut conn = match opts.connect().await {
        Ok(c) => c,
        Err(e) => {
            r.problem(
                key,
                format!(
                    "cannot open {}: {e} (check its owner and mode)",
                    path.display()
                ),
            );
            return;
        }
    };
    match sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
    {
        Ok(m) if m.eq_ignore_ascii_case("wal") => {}
        Ok(m) => r.warning(key, format!("journal mode is {m}; run switches it to wal")),
        Err(e) => r.problem(key, format!("cannot read the journal mode: {e}")),
    }
    migrations(&mut conn, r).await;
    let _ = conn.close().await;
}

async fn migrations(conn: &mut sqlx::SqliteConnection, r: &mut Report) {
    let key = "database.url";
    let has_table: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap_or(false);
    let applied: Vec<(i64, bool, Vec<u8>)> = if has_table {
        match sqlx::query("SELECT version, success, checksum FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    (
                        row.try_get::<i64, _>(0).unwrap_or_default(),
                        row.try_get::<bool, _>(1).unwrap_or(false),
                        row.try_get::<Vec<u8>, _>(2).unwrap_or_default(),
                    )
                })
                .collect(),
            Err(e) => {
                r.problem(key, format!("cannot read the applied migrations: {e}"));
                return;
            }
        }
    } else {
        Vec::new()
    };
    let known = &crate::store::MIGRATOR;
    for (version, success, checksum) in &applied {
        match known.iter().find(|m| m.version == *version) {
            None => r.problem(
                key,
                format!("the database has migration {version}, which this bakong-poller does not know (a newer release migrated it); run the newer release"),
            ),
            Some(_) if !success => r.problem(
                key,
                format!("migration {version} failed halfway; restore the database from a backup"),
            ),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => r.problem(
                key,
                format!("migration {version} ({}) was applied from a different file than this release's", m.description),
            ),
            Some(_) => {}
        }
    }
    let pending: Vec<String> = known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if !pending.is_empty() {
        r.warning(
            key,
            format!(
                "{} migration(s) not applied yet ({}); run applies them at start",
                pending.len(),
                pending.join(", ")
            ),
        );
    }
    // Rows an older release let in that no KHQR can carry: kept, parked.
    let has_payments: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'payments'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap_or(false);
    if has_payments {
        let q = format!("SELECT id FROM payments WHERE {TOO_PRECISE} ORDER BY id");
        if let Ok(ids) = sqlx::query_scalar::<_, i64>(&q).fetch_all(&mut *conn).await {
            if !ids.is_empty() {
                let shown: Vec<String> = ids.iter().take(10).map(i64::to_string).collect();
                r.warning(
                    "payments.amount",
                    format!(
                        "{} pending row(s) have an amount no KHQR can carry (USD with more than 2 decimals, KHR with decimals), ids {}{}; the daemon parks them with an error, fix or delete them",
                        ids.len(),
                        shown.join(", "),
                        if ids.len() > 10 { ", ..." } else { "" }
                    ),
                );
            }
        }
    }
}

fn token(settings: &Settings, r: &mut Report) {
    let b = &settings.bakong;
    let email = b.email.is_some();
    // Renewed tokens are saved beside the token file (temporary file, rename).
    let save = writable_dir(&parent_dir(&b.token_file));
    let can_renew = email && save.is_ok();
    let why_not = || match (&b.email, &save) {
        (None, _) => "bakong.email is not set".to_string(),
        (Some(_), Err(e)) => format!("bakong.token_file cannot be written ({e})"),
        (Some(_), Ok(())) => String::new(),
    };
    let picked = match settings.initial_token() {
        Ok(p) => p,
        Err(e) => {
            r.problem("bakong.token_file", e);
            return;
        }
    };
    let now = Utc::now();
    match picked {
        Some((t, src)) => {
            let exp = t.claims().expires_at;
            match exp {
                Some(exp) if exp <= now => {
                    if can_renew {
                        r.warning(
                            "bakong.token",
                            format!("the token from {src} expired at {exp}; run renews it at start with bakong.email"),
                        );
                    } else {
                        r.problem(
                            "bakong.token",
                            format!("the token from {src} expired at {exp} and run cannot renew it: {}; set bakong.email or put a new token in bakong.token_file", why_not()),
                        );
                    }
                }
                Some(exp) if !can_renew => {
                    let days = (exp - now).num_hours() as f64 / 24.0;
                    r.warning(
                        if email { "bakong.token_file" } else { "bakong.email" },
                        format!("{}, so the token cannot be renewed; it expires at {exp} ({days:.1} days left)", why_not()),
                    );
                }
                Some(_) => {}
                None if !can_renew => r.warning(
                    if email {
                        "bakong.token_file"
                    } else {
                        "bakong.email"
                    },
                    format!(
                        "{}, so the token cannot be renewed if the server refuses it",
                        why_not()
                    ),
                ),
                None => {}
            }
        }
        None => {
            // A token dropped as expired still tells the operator why.
            if let Some(exp) = newest_expired(settings) {
                if can_renew {
                    r.warning(
                        "bakong.token",
                        format!("the only token found expired at {exp}; run renews it at start with bakong.email"),
                    );
                } else {
                    r.problem(
                        "bakong.token",
                        format!("the only token found expired at {exp} and run cannot renew it: {}; set bakong.email or put a new token in bakong.token_file", why_not()),
                    );
                }
                return;
            }
            r.problem(
                "bakong.token",
                format!(
                    "no token in bakong.token, bakong.token_file ({}) or $CREDENTIALS_DIRECTORY/token; run `bakong-poller token verify`",
                    b.token_file.display()
                ),
            );
            if !email {
                r.warning(
                    "bakong.email",
                    "not set, so an expired token cannot be renewed",
                );
            }
        }
    }
}

/// The latest `exp` among the token sources, if all readable ones expired.
fn newest_expired(settings: &Settings) -> Option<chrono::DateTime<Utc>> {
    let mut tokens: Vec<Token> = settings.config_token().into_iter().collect();
    let mut files = vec![settings.bakong.token_file.clone()];
    if let Some(dir) = settings.credentials_dir() {
        files.push(dir.join("token"));
    }
    for f in files {
        if let Ok(Some(t)) = read_token_file(&f) {
            tokens.push(t);
        }
    }
    tokens
        .iter()
        .filter_map(|t| t.claims().expires_at)
        .filter(|e| *e <= Utc::now())
        .max()
}

async fn account_online(settings: &Settings, r: &mut Report) {
    let Some(account) = &settings.bakong.account_id else {
        return;
    };
    let client = match crate::app::build_client(settings, false) {
        Ok(c) => c,
        Err(e) => {
            r.problem("bakong.base_url", format!("cannot build the client: {e}"));
            return;
        }
    };
    match client.check_account(account).await {
        Ok(true) => {}
        Ok(false) => r.problem(
            "bakong.account_id",
            format!("Bakong does not know the account {account:?} (check_bakong_account: not found); every payment would be a mismatch"),
        ),
        Err(e) => r.warning(
            "bakong.account_id",
            format!("could not ask Bakong whether {account:?} exists: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_never_carries_a_password() {
        let f = Finding::new("database.url", "cannot open postgres://u:S3cretPass@db/x");
        assert!(!f.to_string().contains("S3cretPass"), "{f}");
    }
}
