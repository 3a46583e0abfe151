//! [`FakeMessenger`]: a loopback HTTP server that plays the platform's `outbound_url`, verifies, records and answers deliveries.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::unix_now;
use crate::webhooks::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Secret};

/// Largest body the fake reads (deletion reports of 1000 items stay far below this).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The event type whose acknowledgement carries the platform's message ID(s).
const OPERATOR_MESSAGE_CREATED: &str = "operator.message.created";

/// How the fake answers the next deliveries that carry a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer 200 (the default).
    Accept,
    /// Answer this status every time.
    Fail(u16),
    /// Answer the status for the next N deliveries, then switch to [`Mode::Accept`].
    FailNext(u32, u16),
    /// Never answer: hold the request open until the client gives up.
    Hang,
    /// Hold each request open until [`FakeMessenger::release`], then answer as `Accept`.
    Hold,
}

/// One delivery attempt as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `webhook-id` header (empty if missing); retries repeat it.
    pub webhook_id: String,
    /// The body's `type` (empty if the body is not a JSON object with a string `type`).
    pub event_type: String,
    /// The body's `data` (`null` if absent or unparsable).
    pub data: Value,
    /// The status the fake answered; 0 when it never answered ([`Mode::Hang`]).
    pub status_returned: u16,
    /// Whether the Standard Webhooks v1 signature verified.
    pub signature_ok: bool,
}

impl Delivery {
    /// Whether the fake acknowledged this attempt with a 2xx.
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status_returned)
    }
}

/// A running fake platform; the server stops when this is dropped (or on [`FakeMessenger::stop`]).
pub struct FakeMessenger {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

/// State shared with the server's worker thread.
struct Shared {
    secret: Secret,
    state: Mutex<State>,
    /// Woken on every recorded delivery.
    recorded: Notify,
    /// Opened by [`FakeMessenger::release`]: held requests are answered.
    released: tokio::sync::watch::Sender<bool>,
}

struct State {
    mode: Mode,
    deliveries: Vec<Delivery>,
    /// The `n` of the next default `ext-op-<n>` reply.
    next_op_id: u64,
    /// One-shot override for the next `operator.message.created` reply.
    reply_ids: Option<Vec<String>>,
    /// First 2xx body per `webhook-id`, repeated for retries so IDs stay stable.
    acked: HashMap<String, Value>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl FakeMessenger {
    /// Binds `127.0.0.1:0` and serves with one worker; deliveries must be signed with `secret`.
    ///
    /// Must be called inside a tokio runtime (plain or `#[tokio::test]`).
    pub async fn start(secret: Secret) -> std::io::Result<FakeMessenger> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            secret,
            state: Mutex::new(State {
                mode: Mode::Accept,
                deliveries: Vec::new(),
                next_op_id: 1,
                reply_ids: None,
                acked: HashMap::new(),
            }),
            recorded: Notify::new(),
            released: tokio::sync::watch::channel(false).0,
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeMessenger {
            addr,
            shared,
            handle,
        })
    }

    /// The URL to configure as the channel's `outbound_url`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How the next validly signed deliveries are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// Answer the requests held by [`Mode::Hold`] (as `Accept`), and every later one.
    pub fn release(&self) {
        self.shared.lock().mode = Mode::Accept;
        self.shared.released.send_replace(true);
    }

    /// `Some(ids)`: answer the next new `operator.message.created` with `{"message_ids": ids}`,
    /// once. `None`: back to `{"message_id": "ext-op-<n>"}`.
    pub fn set_reply_ids(&self, ids: Option<Vec<String>>) {
        self.shared.lock().reply_ids = ids;
    }

    /// Every delivery attempt so far, in arrival order (retries included).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// The distinct acknowledged events: the first 2xx attempt of each `webhook-id`, in order.
    pub fn events(&self) -> Vec<Delivery> {
        acknowledged_events(&self.shared.lock().deliveries)
    }

    /// Waits until `f` holds for the deliveries so far and returns them; on timeout, an error
    /// that lists everything seen. Wakes on each recorded delivery, never polls.
    pub async fn wait_for<F: Fn(&[Delivery]) -> bool>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, String> {
        let waiting = async {
            loop {
                // Register interest before looking, so a delivery in between is not missed.
                let mut notified = std::pin::pin!(self.shared.recorded.notified());
                notified.as_mut().enable();
                {
                    let state = self.shared.lock();
                    if f(&state.deliveries) {
                        return state.deliveries.clone();
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, waiting)
            .await
            .map_err(|_| timeout_report(timeout, &self.shared.lock().deliveries))
    }

    /// Waits until at least `n` distinct events were acknowledged; returns those events.
    pub async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, String> {
        let all = self
            .wait_for(|d| acknowledged_events(d).len() >= n, timeout)
            .await?;
        Ok(acknowledged_events(&all))
    }

    /// Stops the server and waits until it has.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for FakeMessenger {
    fn drop(&mut self) {
        // The command is queued immediately; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// First 2xx attempt per `webhook-id`, in order.
fn acknowledged_events(deliveries: &[Delivery]) -> Vec<Delivery> {
    let mut seen = std::collections::HashSet::new();
    deliveries
        .iter()
        .filter(|d| d.acknowledged() && seen.insert(d.webhook_id.as_str()))
        .cloned()
        .collect()
}

fn timeout_report(timeout: Duration, deliveries: &[Delivery]) -> String {
    let mut out = format!(
        "condition not met within {timeout:?}; {} deliveries seen:",
        deliveries.len()
    );
    for (i, d) in deliveries.iter().enumerate() {
        let _ = write!(
            out,
            "\n  #{i} id={} type={} status={} signature_ok={} data={}",
            d.webhook_id, d.event_type, d.status_returned, d.signature_ok, d.data
        );
    }
    out
}

/// The single handler: any path; only POST is a delivery.
async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if req.method() != Method::POST {
        return HttpResponse::MethodNotAllowed().finish();
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let id = header(HEADER_ID);
    let signature_ok = shared.secret.verifies(
        id,
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
        &body,
        unix_now(),
    );
    let envelope = serde_json::from_slice::<Value>(&body).ok();
    let event_type = envelope
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut delivery = Delivery {
        webhook_id: id.unwrap_or_default().to_owned(),
        event_type: event_type.clone().unwrap_or_default(),
        data: envelope
            .as_ref()
            .and_then(|v| v.get("data"))
            .cloned()
            .unwrap_or(Value::Null),
        status_returned: 0,
        signature_ok,
    };

    let answer = {
        let mut state = shared.lock();
        let answer = if !signature_ok {
            Some((
                StatusCode::UNAUTHORIZED,
                json!({"error": "bad or missing signature"}),
            ))
        } else if event_type.is_none() {
            Some((
                StatusCode::BAD_REQUEST,
                json!({"error": "body is not {\"type\": ..., \"data\": ...}"}),
            ))
        } else {
            state.answer(&delivery)
        };
        delivery.status_returned = answer.as_ref().map_or(0, |(status, _)| status.as_u16());
        let held = signature_ok && event_type.is_some() && state.mode == Mode::Hold;
        let index = state.deliveries.len();
        state.deliveries.push(delivery.clone());
        if held { Err(index) } else { Ok(answer) }
    };
    shared.recorded.notify_waiters();
    let answer = match answer {
        Ok(answer) => answer,
        Err(index) => {
            // Held until the test releases it; then answered (and recorded) as `Accept`.
            let _ = shared.released.subscribe().wait_for(|open| *open).await;
            let mut state = shared.lock();
            let answer = state.answer(&delivery);
            let status = answer.as_ref().map_or(0, |(status, _)| status.as_u16());
            if let Some(recorded) = state.deliveries.get_mut(index) {
                recorded.status_returned = status;
            }
            drop(state);
            shared.recorded.notify_waiters();
            answer
        }
    };

    match answer {
        Some((status, reply)) => HttpResponse::build(status).json(reply),
        None => std::future::pending().await,
    }
}

impl State {
    /// Status and body for a validly signed, well-formed delivery; `None` = hang.
    fn answer(&mut self, delivery: &Delivery) -> Option<(StatusCode, Value)> {
        match self.mode {
            Mode::Hang | Mode::Hold => return None,
            Mode::Fail(status) => return Some(failure(status)),
            Mode::FailNext(n, status) if n > 0 => {
                self.mode = if n == 1 {
                    Mode::Accept
                } else {
                    Mode::FailNext(n - 1, status)
                };
                return Some(failure(status));
            }
            Mode::FailNext(..) | Mode::Accept => {}
        }
        if let Some(first) = self.acked.get(&delivery.webhook_id) {
            return Some((StatusCode::OK, first.clone()));
        }
        let reply = if delivery.event_type == OPERATOR_MESSAGE_CREATED {
            match self.reply_ids.take() {
                Some(ids) => json!({ "message_ids": ids }),
                None => {
                    let id = format!("ext-op-{}", self.next_op_id);
                    self.next_op_id += 1;
                    json!({ "message_id": id })
                }
            }
        } else {
            json!({})
        };
        self.acked
            .insert(delivery.webhook_id.clone(), reply.clone());
        Some((StatusCode::OK, reply))
    }
}

/// A simulated failure answer; a code outside 100..=999 becomes 500.
fn failure(status: u16) -> (StatusCode, Value) {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        json!({ "error": format!("simulated failure {status}") }),
    )
}
