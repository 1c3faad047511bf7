//! The HTTP API (docs/services.md): the documented endpoints verbatim, plus
//! version status, finalize and aliases.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use evospike_http::{parse_json, ApiError, RequestId, Service, ServiceConfig};
use evospike_schemas::proto::{AliasReply, ListModelsReply, SetAliasRequest, UploadReply};
use futures_util::StreamExt as _;
use serde::Deserialize;

use crate::blobs::BlobError;
use crate::messages::{model_message, version_message};
use crate::registry::{check_name, RegisterRequest, Registry, RegistryError, VersionState};

/// Limits of the registry's own routes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest uploaded file, in bytes.
    pub max_upload: u64,
    /// An upload whose client sends nothing for this long is dropped (408).
    /// Uploads have no overall time limit: a big file takes what it takes.
    pub upload_idle: std::time::Duration,
}

impl Limits {
    /// `max_upload` bytes, and 30 s of silence ends an upload.
    pub fn new(max_upload: u64) -> Limits {
        Limits {
            max_upload,
            upload_idle: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct App {
    registry: Arc<Registry>,
    upload_idle: std::time::Duration,
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> ApiError {
        match err {
            RegistryError::Invalid(m) => ApiError::bad_request(m),
            RegistryError::NotFound(m) => ApiError::not_found(m),
            RegistryError::Conflict(m) => ApiError::conflict(m),
            RegistryError::Blob(BlobError::Mismatch { declared, actual }) => ApiError::bad_request(
                format!("the body's sha256 is {actual}, not the declared {declared}; nothing was stored"),
            ),
            other => ApiError::internal(&other),
        }
    }
}

/// Runs `f` on the registry off the async threads (it syncs to disk).
async fn blocking<T: Send + 'static>(
    registry: &Arc<Registry>,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let registry = registry.clone();
    tokio::task::spawn_blocking(move || f(&registry))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// The registry's HTTP service: routes, limits, and the shared kit around them.
pub fn service(registry: Arc<Registry>, config: ServiceConfig, limits: Limits) -> Service {
    let app = App {
        registry,
        upload_idle: limits.upload_idle,
    };
    let json_limit = config.body_limit;
    let routes = Router::new()
        .route(
            "/models/register",
            post(register).layer(evospike_http::body_limit(json_limit)),
        )
        .route("/models", get(list))
        .route("/models/{model_id}", get(model))
        .route("/models/{model_id}/versions/{version}", get(version))
        .route(
            "/models/{model_id}/versions/{version}/finalize",
            post(finalize),
        )
        .route(
            "/models/{model_id}/aliases/{alias}",
            put(set_alias).layer(evospike_http::body_limit(json_limit)),
        )
        .with_state(app.clone());
    let long = Router::new()
        .route(
            "/models/{model_id}/upload",
            post(upload).layer(evospike_http::body_limit(
                usize::try_from(limits.max_upload).unwrap_or(usize::MAX),
            )),
        )
        .route("/models/{model_id}/download/{filename}", get(download))
        .with_state(app);
    Service::new("registry", config)
        .routes(routes)
        .long_routes(long)
}

async fn register(
    State(app): State<App>,
    id: RequestId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterRequest = parse_json(&body)?;
    let (record, created) = blocking(&app.registry, move |r| r.register(req)).await?;
    tracing::info!(request_id = %id.0, model = %record.model_id, version = %record.version, created, "register");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(version_message(record))).into_response())
}

async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let models = blocking(&app.registry, |r| r.models()).await?;
    Ok(Json(ListModelsReply {
        models: models.into_iter().map(model_message).collect(),
    })
    .into_response())
}

async fn model(State(app): State<App>, Path(model_id): Path<String>) -> Result<Response, ApiError> {
    let view = blocking(&app.registry, move |r| r.model(&model_id)).await?;
    Ok(Json(model_message(view)).into_response())
}

async fn version(
    State(app): State<App>,
    Path((model_id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = blocking(&app.registry, move |r| {
        r.version(&model_id, &version)?.ok_or_else(|| {
            RegistryError::NotFound(format!("model {model_id} has no version {version}"))
        })
    })
    .await?;
    Ok(Json(version_message(record)).into_response())
}

async fn finalize(
    State(app): State<App>,
    Path((model_id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = blocking(&app.registry, move |r| r.finalize(&model_id, &version)).await?;
    match record.state {
        VersionState::Failed => Err(ApiError::bad_request(format!(
            "model {} version {} failed its check and is now failed: {}",
            record.model_id,
            record.version,
            record.error.as_deref().unwrap_or("unknown problem")
        ))),
        _ => Ok(Json(version_message(record)).into_response()),
    }
}

async fn set_alias(
    State(app): State<App>,
    Path((model_id, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let SetAliasRequest { version } = parse_json(&body)?;
    let (m, a, v) = (model_id.clone(), alias.clone(), version.clone());
    blocking(&app.registry, move |r| r.set_alias(&m, &a, &v)).await?;
    Ok(Json(AliasReply {
        model_id,
        alias,
        version,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    version: String,
    filename: String,
    #[serde(default)]
    sha256: Option<String>,
}

async fn upload(
    State(app): State<App>,
    Path(model_id): Path<String>,
    Query(query): Query<UploadQuery>,
    id: RequestId,
    body: Body,
) -> Result<Response, ApiError> {
    check_name("model_id", &model_id)?;
    check_name("version", &query.version)?;
    check_name("filename", &query.filename)?;
    if let Some(sha) = &query.sha256 {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(format!(
                "sha256 `{sha}` is not 64 hex digits"
            )));
        }
    }
    let (m, v) = (model_id.clone(), query.version.clone());
    blocking(&app.registry, move |r| r.check_upload(&m, &v)).await?;

    let registry = app.registry.clone();
    let mut writer = blocking(&registry, |r| Ok(r.blobs().writer()?)).await?;
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(app.upload_idle, stream.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the upload stalled (nothing received for {} s); nothing was stored",
                        app.upload_idle.as_secs_f64()
                    ),
                )
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            if evospike_http::is_length_limit(&e) {
                ApiError::too_large("the file is larger than the registry accepts")
            } else {
                ApiError::bad_request(format!("the upload was cut off ({e}); nothing was stored"))
            }
        })?;
        writer = tokio::task::spawn_blocking(move || writer.write(&chunk).map(|()| writer))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| ApiError::from(RegistryError::from(e)))?;
    }
    let declared = query.sha256.clone();
    let stored = blocking(&registry, move |r| {
        Ok(writer.finish(r.blobs(), declared.as_deref())?)
    })
    .await?;
    let (m, v, f, s) = (
        model_id.clone(),
        query.version.clone(),
        query.filename.clone(),
        stored.clone(),
    );
    blocking(&registry, move |r| r.attach(&m, &v, &f, &s)).await?;
    tracing::info!(request_id = %id.0, model = %model_id, version = %query.version, file = %query.filename, sha256 = %stored.sha256, size = stored.size, "upload");
    Ok((
        StatusCode::CREATED,
        Json(UploadReply {
            model_id,
            version: query.version,
            filename: query.filename,
            sha256: stored.sha256,
            size: stored.size,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadQuery {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    alias: Option<String>,
}

/// A byte range asked for with `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    All,
    Range(u64, u64),
    Unsatisfiable,
}

/// Parses a single-range `Range: bytes=…` against a file of `len` bytes. A header
/// that is not a single byte range is ignored (the whole file is sent), as RFC
/// 9110 allows.
fn wanted(headers: &HeaderMap, len: u64) -> Wanted {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Wanted::All;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
        (Ok(_), Ok(_)) => return Wanted::All,
        (Ok(s), Err(_)) if end.is_empty() => (s, len.saturating_sub(1)),
        (Err(_), Ok(n)) if start.is_empty() => {
            if n == 0 {
                return Wanted::Unsatisfiable;
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        _ => return Wanted::All,
    };
    if range.0 >= len {
        Wanted::Unsatisfiable
    } else {
        Wanted::Range(range.0, range.1)
    }
}

async fn download(
    State(app): State<App>,
    Path((model_id, filename)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fname = filename.clone();
    let (record, file) = blocking(&app.registry, move |r| {
        let record = r.resolve(&model_id, query.version.as_deref(), query.alias.as_deref())?;
        let file = record.files.get(&fname).cloned().ok_or_else(|| {
            RegistryError::NotFound(format!(
                "model {} version {} has no file {fname} (files: {})",
                record.model_id,
                record.version,
                record.files.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok((record, file))
    })
    .await?;
    let etag = format!("\"{}\"", file.sha256);
    let mut common = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put(&mut common, header::ETAG, &etag);
    put(
        &mut common,
        header::HeaderName::from_static("x-content-sha256"),
        &file.sha256,
    );
    put(
        &mut common,
        header::HeaderName::from_static("x-model-version"),
        &record.version,
    );
    put(&mut common, header::ACCEPT_RANGES, "bytes");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let len = file.size;
    let (status, start, count) = match wanted(&headers, len) {
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Range(s, e) => {
            put(
                &mut common,
                header::CONTENT_RANGE,
                &format!("bytes {s}-{e}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Wanted::Unsatisfiable => {
            put(
                &mut common,
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside the file ({len} bytes)"),
            )
            .into_response();
            response.headers_mut().extend(common);
            return Ok(response);
        }
    };
    let path = app.registry.blobs().path(&file.sha256);
    let opened = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(start))?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))?;
    put(
        &mut common,
        header::CONTENT_TYPE,
        "application/octet-stream",
    );
    put(&mut common, header::CONTENT_LENGTH, &count.to_string());
    let body = Body::from_stream(read_chunks(opened, count));
    Ok((status, common, body).into_response())
}

/// `count` bytes of `file` as a stream of chunks, read off the async threads.
fn read_chunks(
    file: std::fs::File,
    count: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(Some((file, count)), |state| async move {
        let (mut file, left) = state?;
        if left == 0 {
            return None;
        }
        let n = left.min(256 * 1024);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; usize::try_from(n).unwrap_or(usize::MAX)];
            file.read_exact(&mut buf).map(|()| (file, buf))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok((file, buf)) => Some((Ok(Bytes::from(buf)), Some((file, left - n)))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(wanted(&HeaderMap::new(), 10), Wanted::All);
        assert_eq!(wanted(&range("bytes=2-4"), 10), Wanted::Range(2, 4));
        assert_eq!(wanted(&range("bytes=2-"), 10), Wanted::Range(2, 9));
        assert_eq!(wanted(&range("bytes=-3"), 10), Wanted::Range(7, 9));
        assert_eq!(wanted(&range("bytes=5-100"), 10), Wanted::Range(5, 9));
        assert_eq!(wanted(&range("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(&range("bytes=0-1,3-4"), 10), Wanted::All);
        assert_eq!(wanted(&range("items=0-1"), 10), Wanted::All);
    }
}
