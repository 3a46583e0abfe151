//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};

use super::AppState;

/// 200 once the server accepts requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when storage takes writes (its writer answers and no write or sync has failed), 503
/// otherwise. Forces no sync and writes nothing.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.probe().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: storage is not writable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "status": "storage_unavailable" }))
        }
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let poisoned = state.store.poisoned().is_some();
    state.metrics.storage_poisoned.set(i64::from(poisoned));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
