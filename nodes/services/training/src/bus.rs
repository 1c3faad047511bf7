//! The training service on the bus, and its calls to the model registry.
//!
//! Queryables under `evospike/<ns>/svc/training/<method>`, answering the
//! messages of `schemas/proto/evospike/v1/svc/training.proto`:
//!
//! | method | request | reply |
//! |---|---|---|
//! | `train` | `TrainRequest` | `TrainJob` |
//! | `get_job` | `GetJobRequest` | `TrainJob` |
//! | `list_jobs` | `ListJobsRequest` | `ListJobsReply` |
//! | `cancel_job` | `CancelJobRequest` | `TrainJob` |
//!
//! Errors are the bus's `ErrorReply`: `INVALID_ARGUMENT` for a bad request,
//! also for a conflict (cancelling a finished job, a reused `submission_id`; the
//! bus has no code of its own for those), `NOT_FOUND` for an unknown job.
//!
//! Every change of a job (state, progress) is published as its `TrainJob` on
//! [`progress_key`]: `evospike/<ns>/svc/training/progress`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evospike_bus::{Bus, BusError, Declared, MessagePublisher};
use evospike_schemas::proto::{
    CancelJobRequest, ErrorCode, ErrorReply, GetJobRequest, GetModelRequest, ListJobsReply,
    ListJobsRequest, PublishRequest, RegistryModel, RegistryVersion, TrainJob, TrainRequest,
};

use crate::publish::{BoxFuture, Published, Registrar};
use crate::trainer::{OnChange, Trainer, TrainingError};

/// The service's name in bus keys.
pub const SERVICE: &str = "training";

/// `evospike/<ns>/svc/training/progress`, where job changes are published.
///
/// # Errors
/// The namespace makes no valid key.
pub fn progress_key(bus: &Bus) -> Result<String, BusError> {
    bus.keys().service(SERVICE, "progress")
}

/// Publishes every job change on [`progress_key`].
///
/// # Errors
/// The publisher cannot be declared.
pub fn progress_publisher(bus: &Bus) -> Result<OnChange, BusError> {
    let publisher: Mutex<MessagePublisher<TrainJob>> =
        Mutex::new(bus.message_publisher(&progress_key(bus)?)?);
    Ok(Box::new(move |job: &TrainJob| {
        let publisher = publisher.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = publisher.publish(job) {
            tracing::warn!(%err, job = %job.job_id, "cannot publish the job's progress");
        }
    }))
}

/// Runs `f` on the trainer off the async threads (it syncs to disk).
async fn blocking<T: Send + 'static>(
    trainer: &Arc<Trainer>,
    f: impl FnOnce(&Arc<Trainer>) -> Result<T, TrainingError> + Send + 'static,
) -> Result<T, TrainingError> {
    let trainer = trainer.clone();
    tokio::task::spawn_blocking(move || f(&trainer))
        .await
        .unwrap_or_else(|e| Err(TrainingError::Task(e)))
}

/// Declares the training queryables; they answer while the handles live.
///
/// # Errors
/// A queryable cannot be declared.
pub fn serve(bus: &Bus, responder: &str, trainer: Arc<Trainer>) -> Result<Vec<Declared>, BusError> {
    let keys = bus.keys();
    let t = trainer.clone();
    let train = bus.serve_async::<TrainRequest, TrainJob, _, _>(
        &keys.service(SERVICE, "train")?,
        responder,
        move |req, _| {
            let t = t.clone();
            async move {
                blocking(&t, move |t| t.submit(req))
                    .await
                    .map(|(job, _)| job)
                    .map_err(error_reply)
            }
        },
    )?;
    let t = trainer.clone();
    let get = bus.serve_async::<GetJobRequest, TrainJob, _, _>(
        &keys.service(SERVICE, "get_job")?,
        responder,
        move |req, _| {
            let t = t.clone();
            async move {
                blocking(&t, move |t| t.get(&req.job_id))
                    .await
                    .map_err(error_reply)
            }
        },
    )?;
    let t = trainer.clone();
    let list = bus.serve_async::<ListJobsRequest, ListJobsReply, _, _>(
        &keys.service(SERVICE, "list_jobs")?,
        responder,
        move |req, _| {
            let t = t.clone();
            async move {
                let state = req.state();
                blocking(&t, move |t| t.list(state))
                    .await
                    .map(|jobs| ListJobsReply { jobs })
                    .map_err(error_reply)
            }
        },
    )?;
    let cancel = bus.serve_async::<CancelJobRequest, TrainJob, _, _>(
        &keys.service(SERVICE, "cancel_job")?,
        responder,
        move |req, _| {
            let t = trainer.clone();
            async move {
                blocking(&t, move |t| t.cancel(&req.job_id))
                    .await
                    .map_err(error_reply)
            }
        },
    )?;
    Ok(vec![train, get, list, cancel])
}

/// The bus error of a refused or failed request.
pub fn error_reply(err: TrainingError) -> ErrorReply {
    let code = match &err {
        TrainingError::Invalid(_) | TrainingError::Conflict(_) => ErrorCode::InvalidArgument,
        TrainingError::NotFound(_) => ErrorCode::NotFound,
        _ => {
            tracing::error!(%err, "training request failed");
            ErrorCode::Internal
        }
    };
    ErrorReply {
        code: code as i32,
        message: err.to_string(),
        ..Default::default()
    }
}

/// The model registry, over the bus (`get_model`, `publish`).
#[derive(Debug, Clone)]
pub struct BusRegistrar {
    bus: Bus,
    timeout: Duration,
}

impl BusRegistrar {
    /// Calls the registry on `bus`, waiting at most `timeout` for each answer (the
    /// bus asks again meanwhile while no registry is reachable).
    pub fn new(bus: Bus, timeout: Duration) -> BusRegistrar {
        BusRegistrar { bus, timeout }
    }

    fn describe(&self, err: &BusError) -> String {
        match err {
            BusError::Timeout { key, .. } => format!(
                "no model registry answered at {key} within {} s",
                self.timeout.as_secs_f64()
            ),
            BusError::Remote { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl Registrar for BusRegistrar {
    fn versions(&self, model_id: &str) -> BoxFuture<'_, Result<Vec<Published>, String>> {
        let req = GetModelRequest {
            model_id: model_id.to_owned(),
        };
        Box::pin(async move {
            let key = self
                .bus
                .keys()
                .service("registry", "get_model")
                .map_err(|e| e.to_string())?;
            match self
                .bus
                .request::<_, RegistryModel>(&key, &req, self.timeout)
                .await
            {
                Ok(model) => Ok(model
                    .versions
                    .into_iter()
                    .map(|v| Published::new(v.version, &v.metadata_json))
                    .collect()),
                Err(BusError::Remote {
                    code: ErrorCode::NotFound,
                    ..
                }) => Ok(Vec::new()),
                Err(e) => Err(self.describe(&e)),
            }
        })
    }

    fn publish(&self, req: PublishRequest) -> BoxFuture<'_, Result<RegistryVersion, String>> {
        Box::pin(async move {
            let key = self
                .bus
                .keys()
                .service("registry", "publish")
                .map_err(|e| e.to_string())?;
            self.bus
                .request::<_, RegistryVersion>(&key, &req, self.timeout)
                .await
                .map_err(|e| self.describe(&e))
        })
    }
}
