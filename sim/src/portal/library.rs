//! A stand-in for Bitrix24's JS library (`//api.bitrix24.com/api/v1/`) for browser tests: map
//! `api.bitrix24.com` to this portal (e.g. chromium's `--host-resolver-rules`) and an install
//! page's `BX24.installFinish()` reaches the portal, which then completes the install as
//! Bitrix24 does: it sends `ONAPPINSTALL` (with the application token) to the handlers bound for
//! it (fact sheet §3.4, §11).

use actix_web::{HttpResponse, web};

use super::{Shared, events, oauth};

/// `BX24.init(cb)` calls back at once; `BX24.installFinish()` tells the portal.
const SCRIPT: &str = r#"window.BX24 = {
  init: function (callback) { setTimeout(callback, 0); },
  installFinish: function () {
    var img = new Image();
    img.src = "//api.bitrix24.com/api/v1/install-finish?t=" + Date.now();
    document.documentElement.setAttribute("data-bx24-install-finish", "called");
  }
};"#;

/// `GET /api/v1/`: the stub library.
pub(crate) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .body(SCRIPT)
}

/// `GET /api/v1/install-finish`: the install is complete; `ONAPPINSTALL` goes to its handlers.
pub(crate) async fn install_finish(shared: web::Data<Shared>) -> HttpResponse {
    let handlers: Vec<String> = {
        let mut st = shared.lock();
        st.install_finished += 1;
        st.bindings
            .iter()
            .filter(|(_, b)| b.event == "ONAPPINSTALL")
            .map(|(_, b)| b.handler.clone())
            .collect()
    };
    shared.changed();
    let shared = shared.into_inner();
    tokio::spawn(async move {
        for handler in handlers {
            let body = oauth::install_event_body(&shared);
            let result = events::post(&shared, &handler, body).await;
            tracing::debug!(status = ?result.status, "fake portal: ONAPPINSTALL after installFinish");
            shared.changed();
        }
    });
    // A 1×1 transparent GIF (the caller is an <img>).
    HttpResponse::Ok().content_type("image/gif").body(
        &b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"[..],
    )
}
