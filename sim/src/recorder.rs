//! A recording HTTP server for security tests: it stands for an attacker's host (or an internal
//! address a redirect points at), answers every request with a canned reply, and remembers every
//! request it received, so that a test can prove that nothing reached it.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

/// What the recorder answers.
#[derive(Debug, Clone)]
pub enum CannedReply {
    /// This status with this JSON body.
    Json(u16, Value),
    /// A redirect (`status` 301/302/307/308) to `location`.
    Redirect(u16, String),
    /// This status with this many bytes of `x` (a huge reply).
    Bulk(u16, usize),
}

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub body: Vec<u8>,
}

struct Shared {
    reply: Mutex<CannedReply>,
    requests: Mutex<Vec<Recorded>>,
    /// The number of requests so far, for waiting without polling.
    count: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.requests.lock()
    }
}

/// A running recorder; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct Recorder {
    url: String,
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

struct Guard(ServerHandle);

impl Drop for Guard {
    fn drop(&mut self) {
        #[allow(clippy::let_underscore_future)]
        let _ = self.0.stop(false);
    }
}

impl Recorder {
    /// Bind `127.0.0.1:0` and answer every request with `reply`.
    pub async fn start(reply: CannedReply) -> std::io::Result<Recorder> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            reply: Mutex::new(reply),
            requests: Mutex::new(Vec::new()),
            count: tokio::sync::watch::channel(0).0,
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Recorder {
            url,
            shared,
            _guard: Arc::new(Guard(handle)),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.requests().len()
    }

    /// Wait until at least `n` requests arrived; Err after `timeout`.
    pub async fn wait_for_count(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        let mut count = self.shared.count.subscribe();
        tokio::time::timeout(timeout, count.wait_for(|c| *c >= n))
            .await
            .map(|_| ())
            .map_err(|_| format!("{} of {n} requests within {timeout:?}", self.count()))
    }

    /// Answer later requests with `reply`.
    pub fn set_reply(&self, reply: CannedReply) {
        *self.shared.reply.lock() = reply;
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    shared.requests().push(Recorded {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        body: body.to_vec(),
    });
    shared.count.send_modify(|c| *c += 1);
    let reply = shared.reply.lock().clone();
    let status = |code: u16| {
        actix_web::http::StatusCode::from_u16(code)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    };
    match reply {
        CannedReply::Json(code, value) => HttpResponse::build(status(code))
            .content_type("application/json")
            .body(value.to_string()),
        CannedReply::Redirect(code, location) => HttpResponse::build(status(code))
            .insert_header(("Location", location))
            .finish(),
        CannedReply::Bulk(code, size) => HttpResponse::build(status(code))
            .content_type("text/plain")
            .body(vec![b'x'; size]),
    }
}
