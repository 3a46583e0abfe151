//! Every outbound reply is read up to a cap while streaming (contract §4, §5): Bitrix24 16 MiB,
//! authorization servers and platforms 64 KiB. Over the cap is a failed call.

use openchannel_gateway::outbound_http::{
    PORTAL_REPLY_CAP, ReadError, SMALL_REPLY_CAP, client, read_capped,
};
use openchannel_sim::recorder::{CannedReply, Recorder};
use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_reply_over_its_cap_is_refused_and_one_under_it_is_read() {
    let http = client(Duration::from_secs(10), Duration::from_secs(10)).unwrap();
    let peer = Recorder::start(CannedReply::Bulk(200, PORTAL_REPLY_CAP + 1))
        .await
        .unwrap();
    let reply = http.get(peer.url()).send().await.unwrap();
    assert_eq!(
        read_capped(reply, PORTAL_REPLY_CAP).await,
        Err(ReadError::TooLarge {
            cap: PORTAL_REPLY_CAP
        })
    );
    peer.set_reply(CannedReply::Bulk(200, SMALL_REPLY_CAP));
    let reply = http.get(peer.url()).send().await.unwrap();
    assert_eq!(
        read_capped(reply, SMALL_REPLY_CAP).await.unwrap().len(),
        SMALL_REPLY_CAP
    );
}

#[tokio::test]
async fn an_authorization_server_answering_too_much_fails_the_install() {
    let server = Recorder::start(CannedReply::Bulk(200, SMALL_REPLY_CAP + 1))
        .await
        .unwrap();
    let base = format!("{}/", server.url());
    let app = spawn_with(TestOptions {
        install: false,
        extra_oauth_servers: vec![base.clone()],
        ..Default::default()
    })
    .await;
    let mut body =
        openchannel_gateway::bitrix::form::decode(&app.portal.install_event_body()).unwrap();
    body["auth"]["server_endpoint"] = format!("{base}rest/").into();
    let (status, reply) = status_json(
        app.post_form(
            "/bitrix/install",
            openchannel_gateway::bitrix::form::encode(&body),
        )
        .await,
    )
    .await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"]["code"], "oauth_server_unavailable");
    assert_eq!(server.count(), 1);
    assert!(no_portal_stored(&app));
}

#[tokio::test]
async fn a_platform_answering_too_much_is_a_failed_delivery_retried() {
    let platform = Recorder::start(CannedReply::Bulk(200, SMALL_REPLY_CAP + 1))
        .await
        .unwrap();
    let app = operator_reply_to(&format!("{}/hook", platform.url())).await;
    platform
        .wait_for_count(2, WAIT)
        .await
        .expect("the delivery is retried");
    assert!(
        app.portal.delivery_reports().is_empty(),
        "no delivery reported for an unread answer"
    );
}
