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

use chrono::Utc;
use serde::Serialize;

use crate::config::Settings;
use crate::redact::redact_text;

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
    if crate::store::postgres::accepts(&settings.database.url) {
        postgres_database(settings, &mut r).await;
    } else if let Some(path) = settings.database_path() {
        database(settings, &path, &mut r).await;
    }
    // On PostgreSQL the token the daemons share in the database counts too
    // (a second host may have none of its own); an unreachable database is
    // reported above, and the local candidates are judged alone.
    let picked = match crate::app::token_choice(settings).await {
        Ok(p) => Ok(p),
        Err(_) => crate::tokens::choice(settings),
    };
    token(settings, picked, &mut r);
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
    let found =
        match crate::store::inspect(&settings.database.url, settings.database.busy_timeout).await {
            Ok(f) => f,
            Err(e) => {
                r.problem(
                    key,
                    format!(
                        "cannot inspect {}: {e} (check its owner and mode)",
                        path.display()
                    ),
                );
                return;
            }
        };
    inspection(&found, settings, r);
}

/// A PostgreSQL database: the server answers, and what its migrations say.
/// Nothing is created: a database or schema that does not exist is a
/// problem to fix by hand (`run` creates only the tables).
async fn postgres_database(settings: &Settings, r: &mut Report) {
    let url = &settings.database.url;
    match crate::store::inspect(url, settings.database.busy_timeout).await {
        Ok(found) => inspection(&found, settings, r),
        Err(e) => r.problem(
            "database.url",
            format!(
                "cannot reach {}: {e} (check that the server runs, the role, its password, pg_hba.conf and sslmode)",
                crate::redact::redact_url(url)
            ),
        ),
    }
}

/// What an inspection found, on either backend.
fn inspection(found: &crate::store::Inspection, settings: &Settings, r: &mut Report) {
    let key = "database.url";
    // Receivers this config has against those of the daemons running on
    // the database now.
    let live = crate::store::member_receivers(found.live_receivers.clone());
    if !live.is_empty() {
        let mine = crate::store::MemberReceivers {
            host: "this config".into(),
            pid: 0,
            receivers: crate::notify::receiver_configs(settings),
        };
        let mut all = vec![mine];
        all.extend(live);
        for line in crate::store::receiver_conflicts(&all) {
            r.warning("webhook.url", line);
        }
    }
    for p in &found.problems {
        r.problem(key, p.clone());
    }
    if !found.journal_mode.eq_ignore_ascii_case("wal") {
        r.warning(
            key,
            format!(
                "journal mode is {}; run switches it to wal",
                found.journal_mode
            ),
        );
    }
    for version in &found.unknown_migrations {
        r.problem(
            key,
            format!("the database has migration {version}, which this bakong-poller does not know (a newer release migrated it); run the newer release"),
        );
    }
    for version in &found.failed_migrations {
        r.problem(
            key,
            format!("migration {version} failed halfway; restore the database from a backup"),
        );
    }
    for m in &found.altered_migrations {
        r.problem(
            key,
            format!("migration {m} was applied from a different file than this release's"),
        );
    }
    if !found.pending_migrations.is_empty() {
        r.warning(
            key,
            format!(
                "{} migration(s) not applied yet ({}); run applies them at start",
                found.pending_migrations.len(),
                found.pending_migrations.join(", ")
            ),
        );
    }
    // Rows an older release let in that no KHQR can carry: kept, parked.
    let ids = &found.too_precise_ids;
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

fn token(
    settings: &Settings,
    picked: Result<Option<crate::bakong::TokenChoice>, crate::bakong::token::TokenError>,
    r: &mut Report,
) {
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
    let picked = match picked {
        Ok(p) => p,
        Err(e) => {
            r.problem("bakong.token_file", e.to_string());
            return;
        }
    };
    let now = Utc::now();
    match picked.map(|c| (c.token, c.source)) {
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
    crate::tokens::candidates(settings)
        .ok()?
        .iter()
        .filter_map(|c| c.token.claims().expires_at)
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
