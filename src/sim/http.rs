//! The simulator over HTTP (axum), at the same paths as the real services, so that mailwave's real
//! clients run against it by changing `[endpoints]` alone:
//! - `POST /{tenant}/oauth2/v2.0/token` (Entra ID)
//! - `POST /adminapi/beta/{tenant}/InvokeCommand` (Exchange Online admin REST)
//! - `GET /v1.0/users`, `GET /v1.0/reports/getMailboxUsageDetail(period='D7')` (302 to a download URL
//!   that needs no token), `GET /v1.0/subscribedSkus`, `POST /v1.0/users/{id}/assignLicense`,
//!   `POST /v1.0/users/{id}/sendMail` (Graph)
//! - `GET /_sim/stats`, `GET /_sim/moves`: what the simulator saw, for tests in another process.
//! - `GET /_sim/clock`, `POST /_sim/clock/start`: its clock for a mailwave that follows it
//!   (`MAILWAVE_CLOCK=sim:<url>`); a held clock (`--hold-clock`) starts at the first InvokeCommand
//!   call or at the start a following command asks for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{ServiceFault, Simulator};

const EXCHANGE_RESOURCE: &str = "https://outlook.office365.com";
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

type Shared = State<Arc<Simulator>>;

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn fault_response(fault: ServiceFault, headers: &HeaderMap) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match fault.body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    if let Some(seconds) = fault.retry_after
        && let Ok(v) = HeaderValue::from_str(&format!("{seconds}"))
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    echo_request_id(&mut response, headers);
    response
}

fn echo_request_id(response: &mut Response, headers: &HeaderMap) {
    if let Some(id) = headers.get("client-request-id") {
        response
            .headers_mut()
            .insert("client-request-id", id.clone());
        response.headers_mut().insert("request-id", id.clone());
    }
}

fn check_token(sim: &Simulator, headers: &HeaderMap, resource: &str) -> Result<(), ServiceFault> {
    let base = base_url(headers);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let now = sim.clock().now();
    sim.with_identity(|id| id.check(now, auth, &[resource, &base]))
}

async fn token(
    State(sim): Shared,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", base_url(&headers));
    let now = sim.clock().now();
    match sim.with_identity(|id| id.issue(now, &url, &form)) {
        Ok(body) => axum::Json(body).into_response(),
        Err((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            axum::Json(body),
        )
            .into_response(),
    }
}

fn page_size(headers: &HeaderMap) -> usize {
    headers
        .get("prefer")
        .and_then(|h| h.to_str().ok())
        .and_then(|p| {
            p.split(',')
                .find_map(|part| part.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

async fn invoke_command(
    State(sim): Shared,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A rehearsal's time starts with the first move-service call, not with its setup.
    sim.clock().start();
    if let Err(fault) = check_token(&sim, &headers, EXCHANGE_RESOURCE) {
        return fault_response(fault, &headers);
    }
    if !headers.contains_key("client-request-id") {
        sim.with_moves(|m| m.stats.missing_client_request_id += 1);
    }
    let parsed: Option<(String, serde_json::Map<String, Value>)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            let input = v.get("CmdletInput")?;
            let name = input.get("CmdletName")?.as_str()?.to_string();
            let params = input
                .get("Parameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Some((name, params))
        });
    let Some((cmdlet, params)) = parsed else {
        return fault_response(
            super::moves::cmdlet_error(
                400,
                "BadRequest",
                "Ex0",
                "System.ArgumentException",
                "The request body is not a valid CmdletInput.",
            ),
            &headers,
        );
    };
    if sim
        .profile()
        .forbidden_cmdlets
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&cmdlet))
    {
        // Outside the app's role: 403 with an empty body.
        let mut response = StatusCode::FORBIDDEN.into_response();
        echo_request_id(&mut response, &headers);
        return response;
    }
    let cursor = query
        .get("$skiptoken")
        .and_then(|s| super::Cursor::parse(s))
        .unwrap_or_default();
    let size = page_size(&headers);
    match sim.invoke(&cmdlet, &params, cursor, size) {
        Ok(ok) => {
            let base = format!("{}/adminapi/beta/{tenant}", base_url(&headers));
            let body = Success {
                context: format!("{base}/$metadata#Collection(Exchange.GenericHashTable)"),
                value: &ok.value,
                next_link: ok
                    .next
                    .map(|next| format!("{base}/InvokeCommand?$skiptoken={}", next.token())),
                warnings: &ok.warnings,
            };
            let mut response = axum::Json(body).into_response();
            echo_request_id(&mut response, &headers);
            response
        }
        Err(fault) => fault_response(fault, &headers),
    }
}

fn graph_guard(sim: &Simulator, headers: &HeaderMap) -> Result<(), ServiceFault> {
    check_token(sim, headers, GRAPH_RESOURCE)?;
    sim.graph_call()
}

async fn users(
    State(sim): Shared,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(f) = graph_guard(&sim, &headers) {
        return fault_response(f, &headers);
    }
    let top: usize = query
        .get("$top")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (page, more) = sim.with_directory(|d| d.users_page(skip, top));
    let base = base_url(&headers);
    let mut body = json!({"@odata.context": format!("{base}/v1.0/$metadata#users"), "value": page});
    if more {
        body["@odata.nextLink"] = json!(format!(
            "{base}/v1.0/users?$top={top}&$skiptoken={}",
            skip + top
        ));
    }
    axum::Json(body).into_response()
}

async fn report(State(sim): Shared, Path(function): Path<String>, headers: HeaderMap) -> Response {
    if let Err(f) = graph_guard(&sim, &headers) {
        return fault_response(f, &headers);
    }
    // getMailboxUsageDetail(period='D7'), with or without the microsoft.graph. prefix.
    let name = function.trim_start_matches("microsoft.graph.");
    let period = name
        .strip_prefix("getMailboxUsageDetail(period='")
        .and_then(|rest| rest.strip_suffix("')"));
    let Some(period) = period else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "BadRequest", "message": format!("Resource not found for the segment '{function}'.")}}))).into_response();
    };
    match sim.with_directory(|d| d.prepare_report(period)) {
        Ok(token) => {
            let location = format!("{}/_download/report/{token}", base_url(&headers));
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Err(fault) => fault_response(fault, &headers),
    }
}

async fn download(State(sim): Shared, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let had_auth = headers.contains_key(header::AUTHORIZATION);
    match sim.with_directory(|d| d.download(&token, had_auth)) {
        Some(csv) => ([(header::CONTENT_TYPE, "application/octet-stream")], csv).into_response(),
        None => (StatusCode::NOT_FOUND, "The link has expired.").into_response(),
    }
}

async fn skus(State(sim): Shared, headers: HeaderMap) -> Response {
    if let Err(f) = graph_guard(&sim, &headers) {
        return fault_response(f, &headers);
    }
    axum::Json(sim.with_directory(|d| d.subscribed_skus())).into_response()
}

async fn user(State(sim): Shared, Path(user): Path<String>, headers: HeaderMap) -> Response {
    if let Err(f) = graph_guard(&sim, &headers) {
        return fault_response(f, &headers);
    }
    match sim.with_directory(|d| d.get_user(&user)) {
        Ok(v) => axum::Json(v).into_response(),
        Err(f) => fault_response(f, &headers),
    }
}

async fn user_action(
    State(sim): Shared,
    Path((user, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(f) = graph_guard(&sim, &headers) {
        return fault_response(f, &headers);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let now = sim.clock().now();
    match action.as_str() {
        "assignLicense" => match sim.with_directory(|d| d.assign_license(&user, &body)) {
            Ok(v) => axum::Json(v).into_response(),
            Err(f) => fault_response(f, &headers),
        },
        "sendMail" => match sim.with_directory(|d| d.send_mail(now, &user, &body)) {
            Ok(()) => {
                let latency = sim.profile().mail_latency_ms;
                if latency > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
                }
                StatusCode::ACCEPTED.into_response()
            }
            Err(f) => fault_response(f, &headers),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn sim_stats(State(sim): Shared) -> Response {
    let identity = sim.with_identity(|i| i.stats.clone());
    let directory = sim.with_directory(|d| d.stats.clone());
    axum::Json(json!({
        "now": sim.clock().now().to_string(),
        "exchange": sim.stats(),
        "identity": identity,
        "directory": directory,
    }))
    .into_response()
}

async fn sim_clock(State(sim): Shared) -> String {
    crate::time::clock::shared_text(&sim.clock())
}

async fn sim_clock_start(State(sim): Shared) -> String {
    sim.clock().start();
    crate::time::clock::shared_text(&sim.clock())
}

/// `POST /v1.0/$batch`: each request answered (or throttled) on its own.
async fn graph_batch(State(sim): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(f) = check_token(&sim, &headers, GRAPH_RESOURCE) {
        return fault_response(f, &headers);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(super::transport::batch(&sim, &body)).into_response()
}

/// Every message the simulated Graph accepted, in order (tests count them).
async fn sim_mail(State(sim): Shared) -> Response {
    axum::Json(sim.with_directory(|d| d.sent.clone())).into_response()
}

async fn sim_moves(State(sim): Shared) -> Response {
    let moves: Vec<Value> = sim.with_moves(|m| {
        m.moves()
            .iter()
            .map(|mv| {
                let identity = m.identity_of(mv);
                json!({
                    "identity": if mv.is_removed() {
                        format!("removed:{}:{identity}", mv.guid())
                    } else {
                        identity.to_string()
                    },
                    "status": mv.status.name(),
                    "batch": m.batch_of(mv),
                    "creates": mv.creates,
                    "created": mv.created().to_string(),
                    "complete_after": mv.complete_after().map(|t| t.to_string()),
                    "completion_started": mv.completion_started().map(|t| t.to_string()),
                })
            })
            .collect()
    });
    axum::Json(Value::Array(moves)).into_response()
}

pub(crate) fn router(sim: Arc<Simulator>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/adminapi/beta/{tenant}/InvokeCommand",
            post(invoke_command),
        )
        .route("/v1.0/users", get(users))
        .route("/v1.0/users/{user}", get(user))
        .route("/v1.0/users/{user}/{action}", post(user_action))
        .route("/v1.0/$batch", post(graph_batch))
        .route("/v1.0/reports/{function}", get(report))
        .route("/v1.0/subscribedSkus", get(skus))
        .route("/_download/report/{token}", get(download))
        .route("/_sim/stats", get(sim_stats))
        .route("/_sim/moves", get(sim_moves))
        .route("/_sim/mail", get(sim_mail))
        .route("/_sim/clock", get(sim_clock))
        .route("/_sim/clock/start", post(sim_clock_start))
        .with_state(sim)
}

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    sim: Arc<Simulator>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the simulator on `addr` (use port 0) in the background; returns the address it took.
pub async fn start(
    sim: Arc<Simulator>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = serve(sim, listener, std::future::pending()).await;
    });
    Ok((local, task))
}

/// An InvokeCommand success as the service writes it.
#[derive(serde::Serialize)]
struct Success<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    value: &'a serde_json::value::RawValue,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    #[serde(
        rename = "@adminapi.warnings",
        skip_serializing_if = "<[String]>::is_empty"
    )]
    warnings: &'a [String],
}
