//! The API gateway (port 8000): one address for every service.
//!
//! - **Routing over the bus.** `/{service}/{path}` goes to an instance of
//!   `service` — a node that announced itself with a liveliness token
//!   (`@svc/<service>/<node>`) and serves its HTTP API over the bus
//!   ([`evospike_http::bridge`]) — so services need no well-known address.
//!   Several instances are used in turn; one that does not answer is skipped for
//!   a while and the request goes to the next; with none left the answer is 503
//!   naming the service. HTTP services outside the bus join with
//!   `POST /services/register` (a time to live, renewed by registering again).
//! - **`GET /services`**, **`GET /services/health`** (every instance's `/health`
//!   in one answer) and the compatibility endpoint **`POST /api/generate`**
//!   (= `POST /inference/infer`).
//! - **Middleware plugins** of the plugin system, in priority order, switched
//!   on and configured by the `plugins:` parameter: API keys (`ApiKeyAuth`,
//!   401), a token bucket per caller (`RateLimit`, 429 with `Retry-After`), and
//!   validation of known endpoints' bodies against their messages
//!   (`RequestValidation`, 400 naming the field), plus any external middleware
//!   plugin from `plugin_dirs`. A rejected request never reaches a service.
//! - **The web dashboard** at `/`: services, nodes, a steps/s chart, alerts,
//!   training jobs with their curves (from the monitoring service), and a live
//!   spike raster of any topic streamed from the bus (`/events/spikes`).

mod api;
mod dashboard;
mod directory;
mod external;
mod kind;
mod middleware;

pub use kind::{GatewayKind, GatewayParams, DEFAULT_PORT};
