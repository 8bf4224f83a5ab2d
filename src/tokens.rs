//! Where the daemon's token comes from: the candidates (`bakong.token`,
//! the systemd credential `$CREDENTIALS_DIRECTORY/token`, the token file),
//! read from their files with when each was written, and the choice among
//! them by the contract's rule ("Which token is used"). The file I/O of
//! token discovery lives here, next to the token; `config` stays data and
//! validation.

use std::path::Path;

use crate::bakong::token::{read_token_file, Candidate, TokenChoice, TokenError, TokenSource};
use crate::config::Settings;

/// The token candidates: `bakong.token`, the systemd credential
/// (`$CREDENTIALS_DIRECTORY/token`) and `bakong.token_file`, each with when its source was
/// last written.
pub fn candidates(settings: &Settings) -> Result<Vec<Candidate>, TokenError> {
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from)
    };
    let mut out = Vec::new();
    if let Some(token) = settings.config_token() {
        let (source, written) = if settings.origin.token_from_env {
            (TokenSource::Environment, Some(crate::process_start()))
        } else {
            (
                TokenSource::Config,
                settings.origin.file.as_deref().and_then(mtime),
            )
        };
        out.push(Candidate {
            token,
            source,
            written,
        });
    }
    if let Some(dir) = settings.credentials_dir() {
        let p = dir.join("token");
        if let Some((token, m)) = read_token_file(&p)? {
            out.push(Candidate {
                token,
                source: TokenSource::Credential(p),
                written: m.map(Into::into),
            });
        }
    }
    let p = &settings.bakong.token_file;
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
pub fn choice(settings: &Settings) -> Result<Option<TokenChoice>, TokenError> {
    Ok(crate::bakong::token::choose(
        candidates(settings)?,
        chrono::Utc::now(),
    ))
}
