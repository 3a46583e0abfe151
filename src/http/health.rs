//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};

use super::AppState;

/// 200 once the server accepts requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when storage takes a durable write, 503 otherwise.
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
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
