//! No outbound client follows a redirect (contract §4, §5): a portal or a platform answering
//! 302/307 reaches nothing else (a recording server stands for the address it points at), and
//! the call counts as failed and is retried.

use openchannel_sim::portal::{Fault, FaultRule};
use openchannel_sim::recorder::{CannedReply, Recorder};
use serde_json::json;

use crate::helpers::*;

async fn attacker() -> Recorder {
    Recorder::start(CannedReply::Json(200, json!({"result": true})))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_redirecting_portal_reaches_nothing_else_and_the_call_is_retried() {
    let app = spawn_app().await;
    let evil = attacker().await;
    for status in [302, 307] {
        app.portal.push_fault(FaultRule::on(
            "imconnector.send.messages",
            Fault::Redirect {
                status,
                location: format!("{}/internal", evil.url()),
            },
        ));
    }
    let (status, _) = app
        .post_event("message.created", created("c", "u", "m1", "hi"))
        .await;
    assert_eq!(status, 202);
    app.portal
        .wait_until(WAIT, |p| p.messages().len() == 1)
        .await
        .unwrap();
    assert_eq!(evil.count(), 0, "{:?}", evil.requests());
    let redirects = app
        .portal
        .requests()
        .iter()
        .filter(|r| r.error.as_deref() == Some("REDIRECT"))
        .count();
    assert_eq!(redirects, 2);
}

#[tokio::test]
async fn a_redirecting_platform_reaches_nothing_else_and_the_delivery_is_retried() {
    let evil = attacker().await;
    let platform = Recorder::start(CannedReply::Redirect(307, format!("{}/steal", evil.url())))
        .await
        .unwrap();
    let _app = operator_reply_to(&format!("{}/hook", platform.url())).await;
    platform
        .wait_for_count(2, WAIT)
        .await
        .expect("the delivery is retried");
    assert_eq!(evil.count(), 0, "{:?}", evil.requests());
}
