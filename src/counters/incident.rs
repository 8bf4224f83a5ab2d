//! Problems that are about the API or the set-up, not about one payment (a
//! base URL where every endpoint answers 404, a geo-block, a refused or
//! unrenewable token, the network down, the list endpoint closed): logged
//! once when they start, at the level they deserve, and once when they
//! end, instead of a warning per row; the current one is shown by the
//! STATUS line.

use std::sync::Mutex;

use tracing::{error, info, warn};

use crate::bakong::Error;

/// The systemic problem in force, if any.
#[derive(Debug, Default)]
pub struct Incidents {
    current: Mutex<Option<(&'static str, String)>>,
}

/// What an operator should read for a systemic error kind, and whether it
/// is an error (needs a person) rather than a warning (passes by itself).
fn describe(e: &Error) -> Option<(String, bool)> {
    Some(match e {
        Error::EndpointNotFound { .. } => (
            "every request answers HTTP 404: check bakong.base_url (it must be the API base, without /v1)".into(),
            true,
        ),
        Error::GeoBlocked | Error::Forbidden { .. } => (e.to_string(), true),
        Error::Renewal(_) | Error::NoToken => (e.to_string(), true),
        Error::Unauthorized { .. } => (e.to_string(), true),
        Error::Transport { .. } | Error::Timeout { .. } => (e.to_string(), false),
        Error::Http { status, .. } if *status >= 500 => (e.to_string(), false),
        _ => return None,
    })
}

/// Whether errors of this kind (as [`Error::kind`] names them) are about
/// the API or the set-up rather than one payment.
pub fn is_systemic(kind: &str) -> bool {
    matches!(
        kind,
        "endpoint_not_found"
            | "geo_blocked"
            | "forbidden"
            | "renewal"
            | "no_token"
            | "unauthorized"
            | "transport"
            | "timeout"
            | "http"
            | "rate_limited"
            | "quota"
            | "budget"
    )
}

impl Incidents {
    /// Records a failed check. Returns true when the error is systemic (so
    /// the caller logs nothing per row); the first of a kind is logged here.
    pub fn failed(&self, e: &Error) -> bool {
        let Some((text, is_error)) = describe(e) else {
            return false;
        };
        let kind = e.kind();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().map(|(k, _)| *k) != Some(kind) {
            if is_error {
                error!(kind, error = %text, "API problem: payments stay pending until it is fixed");
            } else {
                warn!(kind, error = %text, "API problem: payments stay pending until it passes");
            }
            *cur = Some((kind, text));
        }
        true
    }

    /// Records an answer that came through: the problem, if any, is over.
    pub fn answered(&self) {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((kind, _)) = cur.take() {
            info!(kind, "API answers again");
        }
    }

    /// The kind of the problem in force (an [`Error::kind`] name), for the
    /// metrics.
    pub fn kind(&self) -> Option<&'static str> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(k, _)| *k)
    }

    /// The problem in force, for the STATUS line.
    pub fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, t)| t.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_systemic_problem_is_remembered_until_an_answer_comes_through() {
        let i = Incidents::default();
        let nf = Error::EndpointNotFound {
            endpoint: "check_transaction_by_md5",
        };
        assert!(i.failed(&nf));
        assert!(i.failed(&nf));
        assert!(i.current().is_some_and(|t| t.contains("bakong.base_url")));
        assert!(!i.failed(&Error::Decode {
            endpoint: "x",
            detail: String::new(),
            excerpt: String::new()
        }));
        i.answered();
        assert_eq!(i.current(), None);
    }
}
