//! Admin API (bearer `admin.token`): operations on portals.

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::deletions::require_admin;
use super::error::{ApiError, not_found};
use crate::bitrix::BitrixError;

/// `POST /v1/portals/{member_id}/setup`: run the connector setup of a portal now (idempotent).
pub async fn setup(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    match state.outbox.setup(&path).await {
        Ok(report) => Ok(HttpResponse::Ok()
            .json(serde_json::json!({ "member_id": path.as_str(), "setup": report }))),
        Err(BitrixError::NotInstalled(_)) => Err(not_found(
            "unknown_portal",
            format!("portal {} has not installed the app", path.as_str()),
        )),
        Err(e) => Err(ApiError::Upstream {
            code: "setup_failed",
            message: e.to_string(),
        }),
    }
}

/// `POST /v1/portals/{member_id}/teardown`: unregister the bot and the connector, unbind the
/// events, purge the portal's data; each step reported (200 when all succeeded, 502 otherwise).
pub async fn teardown(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    match state.outbox.teardown(&path).await {
        Ok(report) if report.completed => Ok(HttpResponse::Ok()
            .json(serde_json::json!({ "member_id": path.as_str(), "teardown": report }))),
        Ok(report) => Ok(
            HttpResponse::build(actix_web::http::StatusCode::BAD_GATEWAY)
                .json(serde_json::json!({ "member_id": path.as_str(), "teardown": report })),
        ),
        Err(BitrixError::NotInstalled(_)) => Err(not_found(
            "unknown_portal",
            format!("no portal {}", path.as_str()),
        )),
        Err(e) => Err(ApiError::Upstream {
            code: "teardown_failed",
            message: e.to_string(),
        }),
    }
}
