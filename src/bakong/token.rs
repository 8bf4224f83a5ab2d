//! The access token: a secret wrapper, its JWT dates, where it is kept, and
//! the keeper that all requests share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};

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
}

/// The dates a JWT carries. Read without checking the signature: they only
/// steer renewal, and the server checks the token anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// Issued at.
    pub issued_at: Option<DateTime<Utc>>,
    /// Expires at.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Claims {
    fn read(jwt: &str) -> Claims {
        let payload = jwt.split('.').nth(1).unwrap_or_default();
        let Ok(bytes) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
        else {
            return Claims::default();
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Claims::default();
        };
        let date = |k: &str| {
            v.get(k)
                .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
        };
        Claims {
            issued_at: date("iat"),
            expires_at: date("exp"),
        }
    }
}

/// Reads a token file; `Ok(None)` when it does not exist or is empty.
pub fn read_token_file(path: &Path) -> Result<Option<Token>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Ok(None),
        Ok(s) => Token::new(&s).map(Some).ok_or_else(|| {
            format!(
                "{} does not hold a token (one line, no spaces)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read token file {}: {e}", path.display())),
    }
}

/// Saves a token atomically with mode 0600: a temporary file beside it,
/// fsync, rename, fsync of the directory.
pub fn save_token_file(path: &Path, token: &Token) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("token file {} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.expose().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot save token to {}: {e}", path.display())
    })
}

/// Where a token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `bakong.token` in the config.
    Config,
    /// `bakong.token_file`.
    File(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/token` (systemd LoadCredential).
    Credential(PathBuf),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Config => f.write_str("bakong.token"),
            TokenSource::File(p) => write!(f, "bakong.token_file ({})", p.display()),
            TokenSource::Credential(p) => write!(f, "systemd credential ({})", p.display()),
        }
    }
}

/// Picks the initial token: of `bakong.token`, the token file and the
/// systemd credential, the one issued last (JWT `iat`) wins; on a tie the
/// token file wins, since renewals are saved there.
pub fn pick_initial(
    config_token: Option<&Token>,
    token_file: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Option<(Token, TokenSource)>, String> {
    let mut candidates: Vec<(Token, TokenSource)> = Vec::new();
    if let Some(t) = config_token {
        candidates.push((t.clone(), TokenSource::Config));
    }
    if let Some(dir) = credentials_dir {
        let p = dir.join("token");
        if let Some(t) = read_token_file(&p)? {
            candidates.push((t, TokenSource::Credential(p)));
        }
    }
    if let Some(t) = read_token_file(token_file)? {
        candidates.push((t, TokenSource::File(token_file.to_path_buf())));
    }
    // max_by_key keeps the last of equal keys: the file, pushed last.
    Ok(candidates
        .into_iter()
        .max_by_key(|(t, _)| t.claims().issued_at))
}

/// The shared current token and its generation (bumped by every renewal).
#[derive(Debug)]
pub struct TokenKeeper {
    current: RwLock<Option<(Token, u64)>>,
    /// Held while a renewal is under way: single flight.
    pub(crate) renewing: tokio::sync::Mutex<()>,
    file: PathBuf,
}

impl TokenKeeper {
    /// A keeper starting from `initial`, saving renewals to `file`.
    pub fn new(initial: Option<Token>, file: PathBuf) -> Self {
        TokenKeeper {
            current: RwLock::new(initial.map(|t| (t, 0))),
            renewing: tokio::sync::Mutex::new(()),
            file,
        }
    }

    /// The current token and its generation.
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

    /// Where renewed tokens are saved.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Saves and installs a renewed token, bumping the generation.
    pub(crate) fn install(&self, token: Token) -> Result<u64, String> {
        save_token_file(&self.file, &token)?;
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let generation = cur.as_ref().map(|(_, g)| g + 1).unwrap_or(1);
        *cur = Some((token, generation));
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(iat: i64, exp: i64) -> Token {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let s = format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "HS256"})),
            enc(serde_json::json!({"iat": iat, "exp": exp}))
        );
        Token::new(&s).expect("token")
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
    }

    #[test]
    fn the_newest_token_wins_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        save_token_file(&file, &jwt(200, 300)).expect("save");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, src) = pick_initial(Some(&jwt(100, 300)), &file, None)
            .expect("read")
            .expect("some");
        assert_eq!(src, TokenSource::File(file.clone()));
        let (_, src) = pick_initial(Some(&jwt(400, 500)), &file, None)
            .expect("read")
            .expect("some");
        assert_eq!(src, TokenSource::Config);
    }
}
