//! `/rest/{method}`: parameter parsing, the per-request checks (bucket → faults → auth) and dispatch.

use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::envelope::{self, ApiError, time_block, unix_secs};
use super::events::Emission;
use super::faults::{self, Fault};
use super::state::{PortalState, RequestRecord};
use super::{Shared, batch, events, imbot, imconnector, params};
use crate::form;

/// What a method call may ask for besides its result: events to send once the state lock is released.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub emissions: Vec<Emission>,
    /// Virtual server time this request has spent on items.
    pub spent: Duration,
    /// The request ran past the time limit: stop processing, answer 504.
    pub cut: bool,
}

impl Ctx<'_> {
    /// Spend `cost` on one item; false (and the request cut) when the limit was already reached
    /// before it, so the item is not processed.
    pub(crate) fn spend(&mut self, cost: Duration) -> bool {
        if self.cut || self.spent >= self.shared.config.time_limit {
            self.cut = true;
            return false;
        }
        self.spent += cost;
        true
    }
}

/// How a request ends, decided under the state lock.
enum Reply {
    Success(Value),
    Failure(ApiError),
    BadGateway,
    Redirect(u16, String),
    /// The request ran past the cloud's time limit (after processing part of it).
    Cut,
    /// A front proxy refused the body as too large.
    TooLarge,
}

/// The actix handler for `/rest/{method}` (any HTTP verb).
pub(crate) async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let arrival = Instant::now();
    let started = SystemTime::now();
    let raw = req.match_info().get("method").unwrap_or_default();
    let method_name = raw.strip_suffix(".json").unwrap_or(raw).to_owned();
    let method = method_name.to_ascii_lowercase();
    let parsed = parse_params(&req, &body);
    let commands = match &parsed {
        Ok(p) if method == "batch" => batch::command_methods(p),
        _ => Vec::new(),
    };
    let mut record = RequestRecord {
        at: arrival,
        method: method_name,
        commands,
        status: 200,
        error: None,
    };

    // (1) Leaky bucket, at arrival: every HTTP request counts once, batch included.
    let limited = shared
        .lock()
        .bucket
        .as_mut()
        .is_some_and(|bucket| !bucket.try_take(arrival));
    if limited {
        let err = ApiError::new(503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
        record.status = err.status;
        record.error = Some(err.code.clone());
        shared.lock().requests.push(record);
        shared.changed();
        return envelope::error(&err);
    }
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }

    let mut cx = Ctx {
        shared: &shared,
        emissions: Vec::new(),
        spent: Duration::ZERO,
        cut: false,
    };
    let mut delay = None;
    let mut reply = process(&mut cx, &method, parsed, &mut delay);
    if cx.cut {
        reply = Reply::Cut;
    }
    let emissions = std::mem::take(&mut cx.emissions);
    let response = match reply {
        Reply::Success(result) => {
            let mut time = time_block(started, SystemTime::now() + cx.spent);
            operating_keys(&shared, &method, started, &mut time);
            envelope::success(result, time)
        }
        Reply::Failure(err) => {
            record.status = err.status;
            record.error = Some(err.code.clone());
            envelope::error(&err)
        }
        Reply::BadGateway => {
            record.status = 502;
            record.error = Some("BAD_GATEWAY".into());
            envelope::bad_gateway()
        }
        Reply::TooLarge => {
            record.status = 413;
            record.error = Some("PAYLOAD_TOO_LARGE".into());
            HttpResponse::PayloadTooLarge()
                .content_type("text/html")
                .body("<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center></body></html>")
        }
        Reply::Cut => {
            record.status = 504;
            record.error = Some("TIME_LIMIT_CUT".into());
            shared.lock().cut_requests += 1;
            HttpResponse::GatewayTimeout()
                .content_type("text/html")
                .body("<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>")
        }
        Reply::Redirect(status, location) => {
            record.status = status;
            record.error = Some("REDIRECT".into());
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::FOUND),
            )
            .insert_header(("Location", location))
            .finish()
        }
    };
    // Record before any delay: a client that times out drops this future, but the call did happen.
    shared.lock().requests.push(record);
    shared.changed();
    events::spawn_all(shared.clone().into_inner(), emissions);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// Steps (2)–(4) under the state lock.
fn process(
    cx: &mut Ctx<'_>,
    method: &str,
    parsed: Result<Value, String>,
    delay: &mut Option<Duration>,
) -> Reply {
    let shared = cx.shared;
    let mut st = shared.lock();
    // (2) Whole-request faults: rules for this top-level method or for any request.
    if let Some(fault) = faults::take(&mut st, method, true) {
        match fault {
            Fault::Delay(d) => *delay = Some(d),
            Fault::BadGateway => return Reply::BadGateway,
            Fault::Redirect { status, location } => return Reply::Redirect(status, location),
            Fault::TooLarge => return Reply::TooLarge,
            other => {
                let err = faults::as_error(&other, method, &st).expect("only Delay has no error");
                return Reply::Failure(err);
            }
        }
    }
    if let Some(err) = faults::operating_blocked(&st, method, Instant::now()) {
        return Reply::Failure(err);
    }
    let params = match parsed {
        Ok(params) => params,
        Err(message) => return Reply::Failure(ApiError::bad("INVALID_REQUEST", message)),
    };
    // (3) Auth.
    if let Err(err) = check_auth(&st, &params) {
        return Reply::Failure(err);
    }
    // (4) Dispatch.
    let result = if method == "batch" {
        batch::run(&mut st, cx, &params, delay)
    } else {
        dispatch(&mut st, cx, method, &params)
    };
    match result {
        Ok(value) => Reply::Success(value),
        Err(err) => Reply::Failure(err),
    }
}

/// `auth` must name a live token: unknown (or revoked by uninstall) → `NO_AUTH_FOUND`, expired → `expired_token`.
pub(crate) fn check_auth(st: &PortalState, params: &Value) -> Result<(), ApiError> {
    let token = params::opt_str(params, "auth").unwrap_or_default();
    match st.access_tokens.get(&token) {
        None => Err(ApiError::new(
            401,
            "NO_AUTH_FOUND",
            "Wrong authorization data",
        )),
        Some(expiry) if Instant::now() >= *expiry => Err(ApiError::new(
            401,
            "expired_token",
            "The access token provided has expired.",
        )),
        Some(_) => Ok(()),
    }
}

/// Run one (non-batch) method. `method` is lowercase. Shared by plain requests and batch commands.
pub(crate) fn dispatch(
    st: &mut PortalState,
    cx: &mut Ctx<'_>,
    method: &str,
    params: &Value,
) -> Result<Value, ApiError> {
    match method {
        "app.info" => Ok(app_info(cx.shared)),
        "event.bind" => events::bind(st, params),
        "event.get" => Ok(events::get(st)),
        "event.unbind" => events::unbind(st, params),
        m if m.starts_with("imconnector.") => imconnector::dispatch(st, cx, m, params),
        m if m.starts_with("imbot.") => imbot::dispatch(st, cx, m, params),
        _ => Err(method_not_found()),
    }
}

/// Unknown method (the classic `/rest/` code is undocumented; REST 3.0 uses this one).
pub(crate) fn method_not_found() -> ApiError {
    ApiError::new(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
}

fn app_info(shared: &Shared) -> Value {
    json!({
        "ID": 7, "CODE": shared.config.client_id, "VERSION": 1, "STATUS": "L", "INSTALLED": true,
        "PAYMENT_EXPIRED": "N", "DAYS": null, "LANGUAGE_ID": "en", "LICENSE": "en_project",
        "LICENSE_TYPE": "project", "LICENSE_FAMILY": "project"
    })
}

/// Add `operating` (this method's accumulated time) and `operating_reset_at` to a success `time` block.
fn operating_keys(
    shared: &Shared,
    method: &str,
    started: SystemTime,
    time: &mut serde_json::Map<String, Value>,
) {
    let spent = time.get("duration").and_then(Value::as_f64).unwrap_or(0.0);
    let mut st = shared.lock();
    let total = st.operating_totals.entry(method.to_owned()).or_insert(0.0);
    *total += spent;
    let operating = *total;
    // After an injected operating limit, the reset moment it announced; otherwise the end of the
    // 10-minute window that starts now.
    let reset_at = st
        .operating_blocks
        .get(method)
        .map(|b| b.reset_at_unix)
        .unwrap_or_else(|| unix_secs(started + Duration::from_secs(600)));
    time.insert("operating".into(), json!(operating));
    time.insert("operating_reset_at".into(), json!(reset_at));
}

/// Query string merged with the body (JSON or form); body keys win like PHP's `$_REQUEST`.
fn parse_params(req: &HttpRequest, body: &[u8]) -> Result<Value, String> {
    let mut params = form::decode_bytes(req.query_string().as_bytes())
        .map_err(|e| format!("Bad query string: {e}"))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let looks_json = content_type.is_empty() && body.trim_ascii_start().starts_with(b"{");
    let body_params = if content_type.starts_with("application/json") || looks_json {
        serde_json::from_slice::<Value>(body).map_err(|e| format!("Bad JSON body: {e}"))?
    } else {
        // Multipart is not supported by the fake; the gateway never sends it.
        form::decode_bytes(body).map_err(|e| format!("Bad form body: {e}"))?
    };
    let Value::Object(body_map) = body_params else {
        return Err("The request body must be an object".into());
    };
    let merged = params
        .as_object_mut()
        .expect("form::decode returns an object");
    merged.extend(body_map);
    Ok(params)
}
