//! `ApiError`: the one place where failures become HTTP statuses. Client errors carry a stable
//! snake_case code; server errors are opaque to the caller and logged with their cause.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::store::StoreError;

/// Seconds a sender should wait when storage refuses writes.
pub const STORAGE_RETRY_AFTER_SECS: u32 = 5;

/// An error reply.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time; the connection is closed with the reply.
    #[error("request body not complete within {after_ms} ms")]
    BodyTimeout { after_ms: u64 },
    #[error("storage cannot take writes: {0}")]
    Unavailable(String),
    /// A service the request depends on (other than storage) does not answer; retry later.
    #[error("{message}")]
    ServiceUnavailable { code: &'static str, message: String },
    /// Bitrix24 (or another upstream) failed the operation.
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::ServiceUnavailable { code, .. }
            | ApiError::Upstream { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::Unavailable(_) => "storage_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Stable code for metrics.
    pub fn metric_label(&self) -> &'static str {
        self.code()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => ApiError::Unavailable(reason),
            StoreError::Sled(e) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::ServiceUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Unavailable(cause) => {
                tracing::error!(cause = %cause, "storage refused a write");
                "storage cannot take writes right now; retry later".to_string()
            }
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut reply = HttpResponse::build(self.status_code());
        reply.insert_header((CONTENT_TYPE, "application/json"));
        if matches!(self, ApiError::BodyTimeout { .. }) {
            reply.force_close();
        }
        if matches!(
            self,
            ApiError::Unavailable(_) | ApiError::ServiceUnavailable { .. }
        ) {
            reply.insert_header((RETRY_AFTER, STORAGE_RETRY_AFTER_SECS.to_string()));
        }
        reply.body(json!({ "error": { "code": self.code(), "message": message } }).to_string())
    }
}

/// Shorthands.
pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code,
        message: message.into(),
    }
}

pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthorized {
        code,
        message: message.into(),
    }
}

pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Forbidden {
        code,
        message: message.into(),
    }
}

pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::NotFound {
        code,
        message: message.into(),
    }
}
