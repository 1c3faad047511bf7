//! The web dashboard: a page, its script and style compiled into the binary
//! (served at `/`; nothing is fetched from elsewhere), and the live spike stream
//! it draws its raster from (`GET /events/spikes?topic=…`, server-sent events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use evospike_bus::KeySpace;
use evospike_http::ApiError;
use serde::Deserialize;

use crate::api::App;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

/// At most this many steps a second go to one browser; the rest are counted
/// in the next event's `skipped`.
const MAX_EVENTS_PER_S: u32 = 100;

/// The page and its assets.
pub(crate) fn assets() -> Router {
    let page = |body: &'static str, kind: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, kind)], body) })
    };
    Router::new()
        .route("/", page(INDEX, "text/html; charset=utf-8"))
        .route(
            "/dashboard.js",
            page(SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route("/dashboard.css", page(STYLE, "text/css; charset=utf-8"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SpikeQuery {
    topic: String,
    /// The API key, for browsers (see the guards); read there, unused here.
    #[serde(default)]
    #[allow(dead_code)]
    key: Option<String>,
}

/// `GET /events/spikes?topic=T`: each spike tensor published on `T` from now
/// on, as `{"step", "neurons", "active": [indices], "skipped"}`.
pub(crate) async fn spikes(
    State(app): State<App>,
    Query(query): Query<SpikeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    KeySpace::check_topic(&query.topic)
        .map_err(|e| ApiError::bad_request(format!("`topic`: {e}")))?;
    let subscriber = app
        .bus
        .spike_subscriber(&query.topic)
        .map_err(|e| ApiError::from(&e))?;
    let min_gap = Duration::from_secs(1) / MAX_EVENTS_PER_S;
    let stream = futures_util::stream::unfold(
        (subscriber, tokio::time::Instant::now(), 0u64),
        move |(subscriber, mut last, mut skipped)| async move {
            loop {
                let message = match subscriber.recv().await {
                    Ok(message) => message,
                    Err(evospike_bus::BusError::Closed { .. }) => return None,
                    Err(err) => {
                        tracing::debug!(%err, "a spike message could not be read");
                        continue;
                    }
                };
                let now = tokio::time::Instant::now();
                if now.duration_since(last) < min_gap {
                    skipped += 1;
                    continue;
                }
                last = now;
                let view = message.view();
                let data = serde_json::json!({
                    "step": view.header.step.to_native(),
                    "neurons": view.len(),
                    "active": view.active_indices().collect::<Vec<u32>>(),
                    "skipped": skipped,
                });
                skipped = 0;
                let event: Result<Event, Infallible> = Ok(Event::default().data(data.to_string()));
                return Some((event, (subscriber, last, skipped)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
