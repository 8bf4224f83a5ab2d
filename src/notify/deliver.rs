//! One attempt at one receiver: the signed webhook POST and the command
//! hook. Neither follows redirects or shows a secret: a webhook error
//! names the receiver's host only (reqwest's URL is stripped), and the
//! hook's answer is the first bytes of what it printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::event::sign::{signature_header, SigningKey};

/// How many bytes of an answer are kept for `events show`.
const ANSWER_BYTES: usize = 256;

/// What an attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Taken: a 2xx, or exit 0.
    pub ok: bool,
    /// HTTP status, or the hook's exit code.
    pub code: Option<i64>,
    /// What went wrong (none when ok).
    pub error: Option<String>,
    /// The first bytes of the answer's body or the hook's output.
    pub answer: Option<String>,
}

impl Answer {
    fn failed(error: String) -> Self {
        Answer {
            ok: false,
            code: None,
            error: Some(error),
            answer: None,
        }
    }
}

fn clip(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ANSWER_BYTES)])
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// The webhook receiver: URL, keys and an HTTP client that never follows
/// a redirect.
#[derive(Clone)]
pub struct Webhook {
    url: reqwest::Url,
    keys: Vec<SigningKey>,
    client: reqwest::Client,
    host: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &self.host)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Why a receiver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `webhook.url` does not parse (validation should have caught it).
    #[error("config key webhook.url: not a URL ({0})")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("webhook: cannot build the HTTP client: {0}")]
    Client(String),
}

impl Webhook {
    /// A sender to `url`, signing with `keys`, each attempt limited to `timeout`.
    pub fn new(url: &str, keys: Vec<SigningKey>, timeout: Duration) -> Result<Self, SetupError> {
        let url = reqwest::Url::parse(url)
            .map_err(|_| SetupError::Url(crate::redact::redact_url(url)))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "?".into(),
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            // The webhook goes straight to the merchant's receiver;
            // HTTPS_PROXY is for reaching Bakong from abroad.
            .no_proxy()
            .user_agent(concat!("bakong-poller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError::Client(e.without_url().to_string()))?;
        Ok(Webhook {
            url,
            keys,
            client,
            host,
        })
    }

    /// The receiver's host (and port), as logs show it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// POSTs `body` signed with a fresh timestamp; `id` is the same on
    /// every attempt.
    pub async fn send(&self, id: &str, body: &str) -> Answer {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature_header(&self.keys, id, timestamp, body.as_bytes());
        let sent = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                // without_url: the URL may carry credentials.
                let e = e.without_url();
                let detail = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                return Answer::failed(crate::redact::redact_text(&format!("{kind}{detail}")));
            }
        };
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|_| " (a redirect, not followed: point webhook.url at the final address)");
        let mut bytes = Vec::new();
        let mut stream = resp;
        // Only the first bytes are kept; a huge answer is not read whole.
        while bytes.len() < ANSWER_BYTES {
            match stream.chunk().await {
                Ok(Some(c)) => bytes.extend_from_slice(&c),
                _ => break,
            }
        }
        let ok = status.is_success();
        Answer {
            ok,
            code: Some(i64::from(status.as_u16())),
            error: (!ok).then(|| format!("HTTP {}{}", status.as_u16(), location.unwrap_or(""))),
            answer: clip(&bytes),
        }
    }
}

/// The command hook: an argv run with the event on stdin.
#[derive(Debug, Clone)]
pub struct Hook {
    argv: Vec<String>,
    timeout: Duration,
}

impl Hook {
    /// A hook running `argv`, killed after `timeout`.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        Hook { argv, timeout }
    }

    /// The program's file name, as logs show it.
    pub fn name(&self) -> String {
        let p = self.argv.first().map(String::as_str).unwrap_or("");
        std::path::Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string())
    }

    /// Runs the hook with `body` on stdin and the id and type in
    /// `BAKONG_POLLER_EVENT_ID` / `BAKONG_POLLER_EVENT_TYPE`, in an
    /// environment cleared but for `PATH`, `HOME`, `LANG`, `LANGUAGE`,
    /// `LC_*` and `TZ`. Its stdout and stderr are read to their end (the
    /// first bytes kept). Exit 0 is delivered. After the timeout its whole
    /// process group is killed.
    pub async fn run(&self, id: &str, event_type: &str, body: &str) -> Answer {
        let Some((program, args)) = self.argv.split_first() else {
            return Answer::failed("hook.command is empty".into());
        };
        let mut cmd = tokio::process::Command::new(program);
        // The daemon's environment may hold its settings and credentials
        // (BAKONG_POLLER__BAKONG__TOKEN, PGPASSWORD, HTTPS_PROXY with a
        // password, ...): a hook starts from nothing and gets only the
        // allow-list (docs/src/merchant/webhooks.md, "The command hook").
        cmd.env_clear();
        for (key, value) in std::env::vars_os() {
            if passed_to_hook(&key.to_string_lossy()) {
                cmd.env(&key, &value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
        cmd.args(args)
            .env("BAKONG_POLLER_EVENT_ID", id)
            .env("BAKONG_POLLER_EVENT_TYPE", event_type)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Answer::failed(format!("cannot start {}: {e}", self.name())),
        };
        let pid = child.id();
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let body = body.as_bytes().to_vec();
        let work = async {
            let feed = async {
                if let Some(mut s) = stdin.take() {
                    // A hook that does not read its stdin is fine.
                    let _ = s.write_all(&body).await;
                    let _ = s.shutdown().await;
                }
            };
            let ((), out, err, status) = tokio::join!(
                feed,
                drain(stdout.take()),
                drain(stderr.take()),
                child.wait()
            );
            (out, err, status)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok((out, err, Ok(status))) => {
                let mut text = out;
                text.extend_from_slice(&err);
                let ok = status.success();
                Answer {
                    ok,
                    code: status.code().map(i64::from),
                    error: (!ok).then(|| match status.code() {
                        Some(c) => format!("exit code {c}"),
                        None => "killed by a signal".into(),
                    }),
                    answer: clip(&text),
                }
            }
            Ok((_, _, Err(e))) => Answer::failed(format!("waiting for {}: {e}", self.name())),
            Err(_) => {
                kill_group(pid);
                Answer::failed(format!(
                    "timed out after {} ms; killed",
                    self.timeout.as_millis()
                ))
            }
        }
    }
}

/// What a hook may read of the daemon's environment, by name (the rest,
/// which may hold credentials, it never sees).
fn passed_to_hook(name: &str) -> bool {
    matches!(name, "PATH" | "HOME" | "LANG" | "LANGUAGE" | "TZ") || name.starts_with("LC_")
}

/// PATH for a hook when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How many bytes of each of a hook's outputs are kept (the record keeps
/// [`ANSWER_BYTES`] of them).
const KEEP_BYTES: usize = 4 * 1024;

/// Reads a hook's pipe to its end, keeping the first [`KEEP_BYTES`]: a
/// pipe closed early would kill a talkative hook with SIGPIPE, and it
/// would run again.
async fn drain(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut p) = pipe else {
        return kept;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match p.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = KEEP_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Kills the process group a hook leads (it and what it started).
fn kill_group(pid: Option<u32>) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_reaches_a_hook() {
        for name in [
            "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_TIME", "TZ",
        ] {
            assert!(passed_to_hook(name), "{name}");
        }
        for name in [
            "PGPASSWORD",
            "HTTPS_PROXY",
            "http_proxy",
            "BAKONG_POLLER__BAKONG__TOKEN",
            "CREDENTIALS_DIRECTORY",
            "DATABASE_URL",
        ] {
            assert!(!passed_to_hook(name), "{name}");
        }
    }
}
