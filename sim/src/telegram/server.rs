//! The fake Bot API server and its state.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The header Telegram puts `secret_token` in.
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// One Bot API call the fake received.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub method: String,
    pub params: Value,
    /// When it arrived.
    pub at: Instant,
    /// The `error_code` answered (0 for `ok: true`).
    pub error_code: u16,
}

/// A message the bot sent (and still exists unless `deleted`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub business_connection_id: Option<String>,
    pub message_id: i64,
    pub text: Option<String>,
    /// `photo` / `document` as given (a URL).
    pub photo: Option<String>,
    pub document: Option<String>,
    pub edits: u32,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
struct Fault {
    error_code: u16,
    description: String,
    retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
struct Connection {
    user_chat_id: i64,
    can_reply: bool,
    can_delete: bool,
}

#[derive(Default)]
struct State {
    webhook_url: String,
    webhook_secret: Option<String>,
    allowed_updates: Option<Vec<String>>,
    calls: Vec<ApiCall>,
    sent: Vec<SentMessage>,
    next_message_id: i64,
    next_update_id: i64,
    files: HashMap<String, (String, Vec<u8>)>,
    downloads: Vec<String>,
    faults: HashMap<String, VecDeque<Fault>>,
    connections: HashMap<String, Connection>,
    echo_business_sends: bool,
}

struct Shared {
    token: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// A running fake Bot API; stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl FakeTelegram {
    /// Bind `127.0.0.1:0` and serve the bot with this token.
    pub async fn start(token: &str) -> std::io::Result<FakeTelegram> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // reqwest is built without a TLS provider of its own; ring's is the one in the tree
        // (installing it again is a no-op error, ignored).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            token: token.to_string(),
            state: Mutex::new(State {
                next_message_id: 1000,
                next_update_id: 500_000,
                echo_business_sends: true,
                ..State::default()
            }),
            changed: watch::channel(0).0,
            http,
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .route("/bot{token}/{method}", web::to(api))
                .route("/file/bot{token}/{path:.*}", web::get().to(download))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeTelegram {
            addr,
            shared,
            handle,
        })
    }

    /// The base URL to configure as `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.shared.lock().calls.clone()
    }

    /// Calls of one method so far.
    pub fn calls_of(&self, method: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Messages the bot sent.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// File paths downloaded so far.
    pub fn downloads(&self) -> Vec<String> {
        self.shared.lock().downloads.clone()
    }

    /// The registered webhook: URL, secret and allowed updates.
    pub fn webhook(&self) -> (String, Option<String>, Option<Vec<String>>) {
        let st = self.shared.lock();
        (
            st.webhook_url.clone(),
            st.webhook_secret.clone(),
            st.allowed_updates.clone(),
        )
    }

    /// Forget the webhook (as if someone else called `deleteWebhook`).
    pub fn clear_webhook(&self) {
        let mut st = self.shared.lock();
        st.webhook_url.clear();
        st.webhook_secret = None;
        st.allowed_updates = None;
    }

    /// A file `getFile` can name and the download serves.
    pub fn add_file(&self, file_id: &str, file_path: &str, bytes: Vec<u8>) {
        self.shared
            .lock()
            .files
            .insert(file_id.to_string(), (file_path.to_string(), bytes));
    }

    /// A business connection, as a Premium user connecting the bot makes one.
    pub fn add_business_connection(&self, id: &str, user_chat_id: i64, can_delete: bool) {
        self.shared.lock().connections.insert(
            id.to_string(),
            Connection {
                user_chat_id,
                can_reply: true,
                can_delete,
            },
        );
    }

    /// Whether the bot's sends in business chats echo back as updates (default true).
    pub fn set_echo_business_sends(&self, on: bool) {
        self.shared.lock().echo_business_sends = on;
    }

    /// Answer the next `n` calls of `method` with `error_code` (and `retry_after` for 429).
    pub fn fail_next(
        &self,
        method: &str,
        n: usize,
        error_code: u16,
        description: &str,
        retry_after: Option<u64>,
    ) {
        let mut st = self.shared.lock();
        let queue = st.faults.entry(method.to_string()).or_default();
        for _ in 0..n {
            queue.push_back(Fault {
                error_code,
                description: description.to_string(),
                retry_after,
            });
        }
    }

    /// A fresh update_id (increasing, as Telegram's).
    pub fn next_update_id(&self) -> i64 {
        let mut st = self.shared.lock();
        st.next_update_id += 1;
        st.next_update_id
    }

    /// POST an Update to the registered webhook with the registered secret, as Telegram does;
    /// returns the status and body. Err when no webhook is set.
    pub async fn post_update(&self, update: &Value) -> Result<(u16, Value), String> {
        post_update(&self.shared, update, None).await
    }

    /// [`FakeTelegram::post_update`] with another secret header (`None`: no header).
    pub async fn post_update_with_secret(
        &self,
        update: &Value,
        secret: Option<&str>,
    ) -> Result<(u16, Value), String> {
        post_update(&self.shared, update, Some(secret)).await
    }

    /// Wait until `f` holds for the calls so far (woken by each call, never polling).
    pub async fn wait_for<F: Fn(&[ApiCall]) -> bool>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<Vec<ApiCall>, String> {
        let mut changed = self.shared.changed.subscribe();
        let waiting = async {
            loop {
                changed.borrow_and_update();
                {
                    let st = self.shared.lock();
                    if f(&st.calls) {
                        return st.calls.clone();
                    }
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, waiting).await.map_err(|_| {
            let calls = self.calls();
            let seen: Vec<String> = calls
                .iter()
                .map(|c| format!("{} {} -> {}", c.method, c.params, c.error_code))
                .collect();
            format!("condition not met within {timeout:?}; calls: {seen:#?}")
        })
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn post_update(
    shared: &Shared,
    update: &Value,
    secret: Option<Option<&str>>,
) -> Result<(u16, Value), String> {
    let (url, registered) = {
        let st = shared.lock();
        (st.webhook_url.clone(), st.webhook_secret.clone())
    };
    if url.is_empty() {
        return Err("no webhook is set".into());
    }
    let secret = match secret {
        None => registered,
        Some(s) => s.map(str::to_string),
    };
    let mut request = shared.http.post(url).json(update);
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    let reply = request.send().await.map_err(|e| e.to_string())?;
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn answer(code: u16, body: Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK)).json(body)
}

fn error(code: u16, description: &str) -> (u16, Value) {
    (
        code,
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

async fn api(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (token, method) = path.into_inner();
    let params: Value = if body.is_empty() {
        let query = req.query_string();
        let map: serde_json::Map<String, Value> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Value::Object(map)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let (code, reply, echo) = {
        let mut st = shared.lock();
        let (code, reply, echo) = if token != shared.token {
            let (c, r) = error(401, "Unauthorized");
            (c, r, None)
        } else if let Some(fault) = st.faults.get_mut(&method).and_then(VecDeque::pop_front) {
            let mut reply = json!({"ok": false, "error_code": fault.error_code, "description": fault.description});
            if let Some(after) = fault.retry_after {
                reply["parameters"] = json!({"retry_after": after});
            }
            (fault.error_code, reply, None)
        } else {
            st.handle(&method, &params)
        };
        st.calls.push(ApiCall {
            method: method.clone(),
            params,
            at: Instant::now(),
            error_code: if code == 200 { 0 } else { code },
        });
        (code, reply, echo)
    };
    shared.changed.send_modify(|n| *n += 1);
    if let Some(update) = echo {
        let shared = shared.into_inner();
        tokio::spawn(async move {
            let _ = post_update(&shared, &update, None).await;
        });
    }
    answer(code, reply)
}

async fn download(path: web::Path<(String, String)>, shared: web::Data<Shared>) -> HttpResponse {
    let (token, file_path) = path.into_inner();
    let bytes = {
        let mut st = shared.lock();
        if token != shared.token {
            return answer(
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        }
        st.downloads.push(file_path.clone());
        st.files
            .values()
            .find(|(p, _)| *p == file_path)
            .map(|(_, b)| b.clone())
    };
    shared.changed.send_modify(|n| *n += 1);
    match bytes {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes),
        None => answer(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ),
    }
}

impl State {
    /// (status, reply, an update to post to the webhook afterwards).
    fn handle(&mut self, method: &str, p: &Value) -> (u16, Value, Option<Value>) {
        let ok = |result: Value| (200, json!({"ok": true, "result": result}), None);
        let fail = |code: u16, description: &str| {
            let (c, r) = error(code, description);
            (c, r, None)
        };
        match method {
            "getMe" => ok(
                json!({"id": 42, "is_bot": true, "first_name": "Fake bot", "username": "fake_bot"}),
            ),
            "getWebhookInfo" => {
                let mut info = json!({"url": self.webhook_url, "has_custom_certificate": false, "pending_update_count": 0});
                if let Some(updates) = &self.allowed_updates {
                    info["allowed_updates"] = json!(updates);
                }
                ok(info)
            }
            "setWebhook" => {
                let Some(url) = p["url"].as_str() else {
                    return fail(400, "Bad Request: url is required");
                };
                self.webhook_url = url.to_string();
                self.webhook_secret = p["secret_token"].as_str().map(str::to_string);
                self.allowed_updates = p["allowed_updates"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                });
                ok(json!(true))
            }
            "deleteWebhook" => {
                self.webhook_url.clear();
                ok(json!(true))
            }
            "sendMessage" | "sendPhoto" | "sendDocument" => self.send(method, p),
            "editMessageText" => {
                let (chat, id) = (p["chat_id"].as_i64(), p["message_id"].as_i64());
                let conn = p["business_connection_id"].as_str().map(str::to_string);
                match self.sent.iter_mut().find(|m| {
                    Some(m.chat_id) == chat
                        && Some(m.message_id) == id
                        && m.business_connection_id == conn
                        && !m.deleted
                }) {
                    None => fail(400, "Bad Request: message to edit not found"),
                    Some(m) if m.text.is_none() => {
                        fail(400, "Bad Request: there is no text in the message to edit")
                    }
                    Some(m) if m.text.as_deref() == p["text"].as_str() => fail(
                        400,
                        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same",
                    ),
                    Some(m) => {
                        m.text = p["text"].as_str().map(str::to_string);
                        m.edits += 1;
                        let m = m.clone();
                        ok(message_json(&m))
                    }
                }
            }
            "deleteMessage" => {
                let (chat, id) = (p["chat_id"].as_i64(), p["message_id"].as_i64());
                match self.sent.iter_mut().find(|m| {
                    Some(m.chat_id) == chat
                        && Some(m.message_id) == id
                        && m.business_connection_id.is_none()
                        && !m.deleted
                }) {
                    None => fail(400, "Bad Request: message to delete not found"),
                    Some(m) => {
                        m.deleted = true;
                        ok(json!(true))
                    }
                }
            }
            "deleteBusinessMessages" => {
                let conn = p["business_connection_id"].as_str().unwrap_or_default();
                let Some(c) = self.connections.get(conn).cloned() else {
                    return fail(400, "Bad Request: BUSINESS_CONNECTION_INVALID");
                };
                if !c.can_delete {
                    return fail(400, "Bad Request: not enough rights to delete messages");
                }
                let ids: Vec<i64> = p["message_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                if ids.is_empty() || ids.len() > 100 {
                    return fail(400, "Bad Request: message_ids must hold 1-100 ids");
                }
                for m in self.sent.iter_mut().filter(|m| {
                    m.business_connection_id.as_deref() == Some(conn) && ids.contains(&m.message_id)
                }) {
                    m.deleted = true;
                }
                ok(json!(true))
            }
            "getFile" => {
                let id = p["file_id"].as_str().unwrap_or_default();
                match self.files.get(id) {
                    None => fail(400, "Bad Request: invalid file_id"),
                    Some((path, bytes)) if bytes.len() > 20 * 1024 * 1024 => {
                        let _ = path;
                        fail(400, "Bad Request: file is too big")
                    }
                    Some((path, bytes)) => ok(json!({
                        "file_id": id, "file_unique_id": format!("u-{id}"),
                        "file_size": bytes.len(), "file_path": path,
                    })),
                }
            }
            _ => fail(404, "Not Found: method not found"),
        }
    }

    fn send(&mut self, method: &str, p: &Value) -> (u16, Value, Option<Value>) {
        let Some(chat_id) = p["chat_id"].as_i64() else {
            let (c, r) = error(400, "Bad Request: chat not found");
            return (c, r, None);
        };
        let conn = p["business_connection_id"].as_str().map(str::to_string);
        if let Some(conn) = &conn {
            match self.connections.get(conn) {
                Some(c) if c.can_reply && c.user_chat_id != 0 => {}
                _ => {
                    let (c, r) = error(400, "Bad Request: BUSINESS_CONNECTION_INVALID");
                    return (c, r, None);
                }
            }
        }
        let text = p["text"].as_str().map(str::to_string);
        if method == "sendMessage"
            && text
                .as_deref()
                .is_none_or(|t| t.is_empty() || t.chars().count() > 4096)
        {
            let (c, r) = error(400, "Bad Request: message text is empty or too long");
            return (c, r, None);
        }
        self.next_message_id += 1;
        let message = SentMessage {
            chat_id,
            business_connection_id: conn.clone(),
            message_id: self.next_message_id,
            text,
            photo: p["photo"].as_str().map(str::to_string),
            document: p["document"].as_str().map(str::to_string),
            edits: 0,
            deleted: false,
        };
        self.sent.push(message.clone());
        let json = message_json(&message);
        let echo = match &conn {
            Some(_) if self.echo_business_sends && !self.webhook_url.is_empty() => {
                self.next_update_id += 1;
                let mut echoed = json.clone();
                echoed["from"] = json!({"id": 900, "is_bot": false, "first_name": "Shop"});
                echoed["sender_business_bot"] =
                    json!({"id": 42, "is_bot": true, "first_name": "Fake bot"});
                Some(json!({"update_id": self.next_update_id, "business_message": echoed}))
            }
            _ => None,
        };
        (200, json!({"ok": true, "result": json}), echo)
    }
}

fn message_json(m: &SentMessage) -> Value {
    let mut json = json!({
        "message_id": m.message_id,
        "date": 1_773_265_993,
        "chat": {"id": m.chat_id, "type": "private"},
    });
    if let Some(conn) = &m.business_connection_id {
        json["business_connection_id"] = json!(conn);
    }
    if let Some(text) = &m.text {
        json["text"] = json!(text);
    }
    if m.photo.is_some() {
        json["photo"] = json!([{"file_id": format!("sent-photo-{}", m.message_id), "file_unique_id": "sp", "width": 1, "height": 1}]);
    }
    if m.document.is_some() {
        json["document"] =
            json!({"file_id": format!("sent-doc-{}", m.message_id), "file_unique_id": "sd"});
    }
    json
}
