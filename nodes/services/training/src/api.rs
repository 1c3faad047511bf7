//! The HTTP API (docs/services.md): the documented endpoints verbatim. Bodies
//! are the messages of `schemas/proto/evospike/v1/svc/training.proto` in their
//! derived JSON.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST /train` | `TrainRequest` | `TrainJob`: 201 new, 200 same `submission_id` and request |
//! | `GET /jobs/{job_id}` | | `TrainJob` |
//! | `GET /jobs[?state=RUNNING]` | | `ListJobsReply` |
//! | `POST /jobs/{job_id}/cancel` | | `TrainJob` (CANCELLED); 409 when already final |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use evospike_http::{ApiError, RequestId, Service, ServiceConfig};
use evospike_schemas::proto::{JobState, ListJobsReply, TrainRequest};

use crate::trainer::{state_name, Trainer, TrainingError};

impl From<TrainingError> for ApiError {
    fn from(err: TrainingError) -> ApiError {
        match err {
            TrainingError::Invalid(m) => ApiError::bad_request(m),
            TrainingError::NotFound(m) => ApiError::not_found(m),
            TrainingError::Conflict(m) => ApiError::conflict(m),
            other => ApiError::internal(&other),
        }
    }
}

/// Runs `f` on the trainer off the async threads (it syncs to disk).
async fn blocking<T: Send + 'static>(
    trainer: &Arc<Trainer>,
    f: impl FnOnce(&Arc<Trainer>) -> Result<T, TrainingError> + Send + 'static,
) -> Result<T, ApiError> {
    let trainer = trainer.clone();
    tokio::task::spawn_blocking(move || f(&trainer))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// The training service's HTTP side: its routes and the shared kit around them.
pub fn service(trainer: Arc<Trainer>, config: ServiceConfig) -> Service {
    let limit = config.body_limit;
    let routes = Router::new()
        .route(
            "/train",
            post(train).layer(evospike_http::body_limit(limit)),
        )
        .route("/jobs", get(list))
        .route("/jobs/{job_id}", get(job))
        .route(
            "/jobs/{job_id}/cancel",
            post(cancel).layer(evospike_http::body_limit(limit)),
        )
        .with_state(trainer);
    Service::new("training", config).routes(routes)
}

async fn train(
    State(trainer): State<Arc<Trainer>>,
    id: RequestId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TrainRequest = evospike_http::parse_json(&body)?;
    let (job, created) = blocking(&trainer, move |t| t.submit(req)).await?;
    tracing::info!(request_id = %id.0, job = %job.job_id, created, "train");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job)).into_response())
}

async fn job(
    State(trainer): State<Arc<Trainer>>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = blocking(&trainer, move |t| t.get(&job_id)).await?;
    Ok(Json(job).into_response())
}

/// `state=NAME` (`RUNNING`, or `running`) or nothing.
fn state_filter(query: Option<&str>) -> Result<JobState, ApiError> {
    let mut state = JobState::Unspecified;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "state" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{key}`; GET /jobs takes `state`"
            )));
        }
        let names = [
            JobState::Pending,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ];
        state = names
            .into_iter()
            .find(|s| state_name(*s).eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                let known: Vec<_> = names.iter().map(|s| state_name(*s)).collect();
                ApiError::bad_request(format!(
                    "state `{value}` is not a job state; there are {}",
                    known.join(", ")
                ))
            })?;
    }
    Ok(state)
}

async fn list(
    State(trainer): State<Arc<Trainer>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let state = state_filter(query.as_deref())?;
    let jobs = blocking(&trainer, move |t| t.list(state)).await?;
    Ok(Json(ListJobsReply { jobs }).into_response())
}

async fn cancel(
    State(trainer): State<Arc<Trainer>>,
    id: RequestId,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = blocking(&trainer, move |t| t.cancel(&job_id)).await?;
    tracing::info!(request_id = %id.0, job = %job.job_id, "cancel");
    Ok(Json(job).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_filter_takes_state_names_and_nothing_else() {
        assert_eq!(state_filter(None).unwrap(), JobState::Unspecified);
        assert_eq!(
            state_filter(Some("state=RUNNING")).unwrap(),
            JobState::Running
        );
        assert_eq!(
            state_filter(Some("state=cancelled")).unwrap(),
            JobState::Cancelled
        );
        let e = state_filter(Some("state=DONE")).unwrap_err();
        assert!(
            e.message.contains("DONE") && e.message.contains("SUCCEEDED"),
            "{e}"
        );
        let e = state_filter(Some("limit=3")).unwrap_err();
        assert!(e.message.contains("limit"), "{e}");
    }
}
