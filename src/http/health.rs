//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// The process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can do its work: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(ApiError::Unavailable)?;
    let seal = state
        .store
        .seal_status()
        .await
        .map_err(ApiError::Unavailable)?;
    Ok(Json(json!({
        "status": "ready",
        "store": state.store.kind(),
        "seal": seal.head,
        "unsealed": seal.unsealed,
    })))
}

/// Prometheus text format: the chain's progress and the sealer's backlog.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let seal = state
        .store
        .seal_status()
        .await
        .map_err(ApiError::Unavailable)?;
    let body = format!(
        "# HELP obole_seal_sequence Entries sealed into the hash chain.\n\
         # TYPE obole_seal_sequence counter\n\
         obole_seal_sequence {}\n\
         # HELP obole_entries_unsealed Entries written but not yet sealed.\n\
         # TYPE obole_entries_unsealed gauge\n\
         obole_entries_unsealed {}\n",
        seal.head.sequence, seal.unsealed
    );
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
