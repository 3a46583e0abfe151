//! `GET /v1/deletions/{deletion_id}`: the deletion report, behind the admin bearer token.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, not_found, unauthorized};
use crate::ids::DeletionId;
use crate::report::deletion_report;

/// The report of contract §3.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let deletion_id = DeletionId::from(path.into_inner());
    let (record, items) = state.store.deletion(&deletion_id)?.ok_or_else(|| {
        not_found(
            "unknown_deletion",
            format!("no deletion {:?}", deletion_id.as_str()),
        )
    })?;
    Ok(HttpResponse::Ok().json(deletion_report(&record, &items)))
}

/// `Authorization: Bearer <admin.token>`; an empty token disables the admin API.
pub fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let expected = state.settings.admin.token.expose_secret();
    if expected.is_empty() {
        return Err(unauthorized(
            "admin_api_disabled",
            "the admin API is disabled (admin.token is empty)",
        ));
    }
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "missing_token",
                "Authorization: Bearer <admin token> is required",
            )
        })?;
    // Comparing digests keeps the comparison's timing independent of the token's content.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        return Err(unauthorized(
            "invalid_token",
            "the bearer token is not the admin token",
        ));
    }
    Ok(())
}
