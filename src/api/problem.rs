//! Errors as `application/problem+json` (RFC 9457): a stable `type` per
//! kind, a title, the status, a detail that says what to do, and for a bad
//! body the fields at fault and why.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field of a request that is wrong, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field (`amount`, `metadata`, a query parameter, `Idempotency-Key`).
    #[schema(example = "amount")]
    pub field: String,
    /// Why it was refused.
    #[schema(example = "a USD amount takes at most 2 decimals")]
    pub reason: String,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:bakong-poller:problem:invalid-request",
    "title": "The request is invalid",
    "status": 422,
    "detail": "1 field is invalid: amount",
    "errors": [{"field": "amount", "reason": "a USD amount takes at most 2 decimals"}]
}))]
pub struct Problem {
    /// `urn:bakong-poller:problem:` + the kind: `unauthorized`,
    /// `forbidden`, `not-found`, `already-final`, `too-large`,
    /// `invalid-request`, `idempotency-key-reused`, `unavailable`,
    /// `merchant-not-configured`, `timeout`.
    #[serde(rename = "type")]
    #[schema(example = "urn:bakong-poller:problem:not-found")]
    pub kind: String,
    /// The kind, in words.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// For a bad request: each field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem of `kind` (without the URN prefix).
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:bakong-poller:problem:{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 401: no key, or not a valid one.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid API key is required",
            detail,
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 422 with the fields at fault.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "The request is invalid",
            format!(
                "{} field{} invalid: {}",
                errors.len(),
                if errors.len() == 1 { " is" } else { "s are" },
                names.join(", ")
            ),
        );
        p.errors = errors;
        p
    }

    /// 422 for one field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    /// 503: the database does not answer.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".into());
        let mut r = (status, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        r
    }
}

/// A database error as the client sees it: unavailable, nothing more (the
/// daemon logs the cause).
impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "api: database error");
        Problem::unavailable("the payments database did not answer; retry shortly")
    }
}
