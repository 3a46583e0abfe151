//! Integration tests of the fake portal over real HTTP (reqwest against the actix server).

mod batch;
mod events;
mod imbot;
mod imconnector;
mod rest;

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{FakePortal, FakePortalConfig, loopback_client};
use crate::form;

/// Connector id used by the tests.
pub(super) const CONNECTOR: &str = "oc_test";
/// Open line used by the tests.
pub(super) const LINE: u64 = 7;

/// A started portal plus a valid token.
pub(super) struct Env {
    pub portal: FakePortal,
    pub token: String,
    pub http: reqwest::Client,
}

impl Env {
    pub(super) async fn new(config: FakePortalConfig) -> Env {
        let portal = FakePortal::start(config).await.expect("portal starts");
        let token = portal.issue_tokens().access_token;
        Env {
            portal,
            token,
            http: loopback_client(),
        }
    }

    pub(super) async fn default() -> Env {
        Env::new(FakePortalConfig::default()).await
    }

    /// POST a JSON body with `auth` = the env token.
    pub(super) async fn call(&self, method: &str, params: Value) -> (u16, Value) {
        self.call_as(&self.token, method, params).await
    }

    /// POST a JSON body with the given token.
    pub(super) async fn call_as(
        &self,
        token: &str,
        method: &str,
        mut params: Value,
    ) -> (u16, Value) {
        params
            .as_object_mut()
            .expect("object params")
            .insert("auth".into(), json!(token));
        let response = self
            .http
            .post(format!("{}{method}", self.portal.client_endpoint()))
            .json(&params)
            .send()
            .await
            .expect("request reaches the portal");
        read(response).await
    }

    /// POST a form body (PHP bracket encoding) with `auth` in the query string.
    pub(super) async fn call_form(&self, method: &str, params: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "{}{method}.json?auth={}",
                self.portal.client_endpoint(),
                self.token
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form::encode(&params))
            .send()
            .await
            .expect("request reaches the portal");
        read(response).await
    }

    /// Register the test connector and activate it on [`LINE`].
    pub(super) async fn connector_ready(&self) {
        let (status, body) = self
            .call("imconnector.register", register_params(CONNECTOR))
            .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!({"result": true})),
            "{body}"
        );
        let (status, body) = self
            .call(
                "imconnector.activate",
                json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "ACTIVE": "1"}),
            )
            .await;
        assert_eq!((status, &body["result"]), (200, &json!(true)), "{body}");
    }

    /// `imconnector.send.messages` with the given items.
    pub(super) async fn send(&self, items: Value) -> (u16, Value) {
        self.call(
            "imconnector.send.messages",
            json!({"CONNECTOR": CONNECTOR, "LINE": LINE, "MESSAGES": items}),
        )
        .await
    }
}

pub(super) fn register_params(id: &str) -> Value {
    json!({
        "ID": id, "NAME": "Test connector",
        "ICON": {"DATA_IMAGE": "data:image/svg+xml,%3Csvg%3E%3C/svg%3E", "COLOR": "#69acc0"},
        "PLACEMENT_HANDLER": "https://gateway.example/placement"
    })
}

/// The handle and its futures can cross threads (the gateway's tests spawn them).
#[test]
fn handle_and_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync + Clone>() {}
    is_send_sync::<FakePortal>();
    #[allow(dead_code)]
    fn futures(portal: &FakePortal) {
        is_send(&FakePortal::start(FakePortalConfig::default()));
        is_send(&portal.operator_message(1, "c", "t"));
        is_send(&portal.operator_edit(1, "t"));
        is_send(&portal.operator_delete(1));
        is_send(&portal.disconnect_line(1));
        is_send(&portal.delete_line(1));
        is_send(&portal.uninstall(true));
        is_send(&portal.post_event_raw("h", "f"));
    }
}

/// A client message item.
pub(super) fn item(user: &str, chat: &str, id: &str, text: &str) -> Value {
    json!({"user": {"id": user, "name": "Ivan"}, "message": {"id": id, "date": 1773265993, "text": text},
        "chat": {"id": chat, "url": "https://example.com/chats/1"}})
}

/// Status and JSON body (`Value::Null` for a non-JSON body).
pub(super) async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// One request received by [`Receiver`].
#[derive(Debug)]
pub(super) struct Received {
    pub path: String,
    pub content_type: String,
    pub body: String,
}

impl Received {
    pub(super) fn form(&self) -> Value {
        form::decode(&self.body).expect("event body decodes")
    }
}

/// A tiny local actix server standing in for the gateway's event endpoint.
pub(super) struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Received>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    tx: web::Data<mpsc::UnboundedSender<Received>>,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(&body).into_owned();
    let _ = tx.send(Received {
        path: req.path().to_owned(),
        content_type,
        body,
    });
    HttpResponse::Ok().body("handled")
}

impl Receiver {
    pub(super) async fn start() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let tx = web::Data::new(tx);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(tx.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url, rx, handle }
    }

    /// The next request (events delivered by a REST call are sent asynchronously, so wait for them).
    pub(super) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("an event arrives within 10 s")
            .expect("receiver alive")
    }

    /// A request already delivered (operator actions return after delivery).
    pub(super) fn delivered(&mut self) -> Received {
        self.rx.try_recv().expect("event already delivered")
    }

    pub(super) fn nothing_delivered(&mut self) -> bool {
        self.rx.try_recv().is_err()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        #[allow(clippy::let_underscore_future)]
        let _ = self.handle.stop(false);
    }
}
