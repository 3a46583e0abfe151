//! `BitrixClient` on its own against the fake portal: coalesced refresh, pacing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openchannel_gateway::bitrix::{BitrixClient, BitrixError};
use openchannel_gateway::metrics::Metrics;
use openchannel_gateway::settings::BitrixSettings;
use openchannel_gateway::store::{Installation, PortalRecord, Store};
use openchannel_sim::portal::{BucketConfig, FakePortal, FakePortalConfig, Fault, FaultRule};
use serde_json::json;

async fn client_for(
    portal: &FakePortal,
    rate: f64,
    burst: u32,
) -> (tempfile::TempDir, Store, Arc<BitrixClient>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tokens = portal.issue_tokens();
    let record = PortalRecord {
        setup_at_ms: Some(0),
        ..PortalRecord::installed(
            Installation {
                member_id: portal.member_id(),
                domain: portal.domain(),
                client_endpoint: portal.client_endpoint(),
                oauth_server: portal.oauth_base(),
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
                expires_at: 0,
                application_token: portal.application_token(),
                scope: String::new(),
            },
            0,
        )
    };
    store.commit(move |d| d.put_portal(&record)).await.unwrap();
    let settings = BitrixSettings {
        client_id: "app.test".into(),
        client_secret: "secret.test".into(),
        oauth_servers: vec![portal.oauth_base()],
        portals: Vec::new(),
        oauth_url: None,
        rate_per_second: rate,
        burst,
        request_timeout_ms: 5000,
        request_budget_ms: 20_000,
    };
    let client = BitrixClient::new(settings, store.clone(), Arc::new(Metrics::default())).unwrap();
    (dir, store, Arc::new(client))
}

/// A fake portal and an unthrottled client for it.
async fn fresh() -> (FakePortal, tempfile::TempDir, Store, Arc<BitrixClient>) {
    let portal = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let (dir, store, client) = client_for(&portal, 1000.0, 1000).await;
    (portal, dir, store, client)
}

/// `app.info` answers this error envelope once.
fn app_info_fails(status: u16, code: &str, description: &str) -> FaultRule {
    FaultRule::on(
        "app.info",
        Fault::Error {
            status,
            code: code.into(),
            description: description.into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_with_an_expired_token_share_one_refresh() {
    let portal = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let (_dir, store, client) = client_for(&portal, 1000.0, 1000).await;
    let before = store.portal(&portal.member_id()).unwrap().unwrap();
    portal.expire_access_tokens();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (client, member) = (client.clone(), portal.member_id());
            tokio::spawn(async move { client.call(&member, "app.info", json!({})).await })
        })
        .collect();
    for call in calls {
        call.await
            .unwrap()
            .expect("call succeeds after the refresh");
    }
    assert_eq!(portal.refresh_count(), 1);
    let after = store.portal(&portal.member_id()).unwrap().unwrap();
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotated refresh token is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_refresh_is_an_error_not_a_loop() {
    let portal = FakePortal::start(FakePortalConfig::default())
        .await
        .unwrap();
    let (_dir, store, client) = client_for(&portal, 1000.0, 1000).await;
    // Use up the stored refresh token behind the client's back.
    let stale = store.portal(&portal.member_id()).unwrap().unwrap();
    let oauth = format!(
        "{}?grant_type=refresh_token&client_id=app.test&client_secret=secret.test&refresh_token={}",
        portal.oauth_url(),
        stale.refresh_token
    );
    assert_eq!(reqwest::get(oauth).await.unwrap().status(), 200);
    portal.expire_access_tokens();
    let err = client
        .call(&portal.member_id(), "app.info", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(&err, BitrixError::NeedsReinstall(_)), "{err:?}");
    assert!(
        !format!("{err}").contains("secret.test"),
        "no secret in the error"
    );
    let marked = store.portal(&portal.member_id()).unwrap().unwrap();
    assert_eq!(marked.needs_reinstall.as_deref(), Some("invalid_grant"));
    // No refresh loop: later calls fail at once, without asking the portal or its server again.
    let (oauth_calls, requests) = (portal.oauth_calls(), portal.requests().len());
    for _ in 0..3 {
        let err = client
            .call(&portal.member_id(), "app.info", json!({}))
            .await
            .unwrap_err();
        assert!(matches!(&err, BitrixError::NeedsReinstall(_)), "{err:?}");
    }
    assert_eq!(portal.oauth_calls(), oauth_calls);
    assert_eq!(portal.requests().len(), requests);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_token_refreshes_like_expired_token() {
    let (portal, _dir, _store, client) = fresh().await;
    portal.push_fault(app_info_fails(
        401,
        "invalid_token",
        "The access token provided is invalid.",
    ));
    client
        .call(&portal.member_id(), "app.info", json!({}))
        .await
        .expect("refreshed and retried");
    assert_eq!(portal.refresh_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_reply_with_a_new_client_endpoint_moves_the_portal() {
    let (portal, _dir, store, client) = fresh().await;
    let moved = format!("{}/rest/", portal.url().replace("127.0.0.1", "localhost"));
    portal.report_client_endpoint(Some(moved.clone()));
    portal.expire_access_tokens();
    client
        .call(&portal.member_id(), "app.info", json!({}))
        .await
        .expect("refreshed and retried");
    let after = store.portal(&portal.member_id()).unwrap().unwrap();
    assert_eq!(after.client_endpoint, moved);
    assert!(after.domain.starts_with("localhost:"), "{}", after.domain);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_auth_found_suspends_the_portal_for_a_day() {
    let (portal, _dir, _store, client) = fresh().await;
    portal.push_fault(app_info_fails(
        401,
        "NO_AUTH_FOUND",
        "Wrong authorization data",
    ));
    let first = client
        .call(&portal.member_id(), "app.info", json!({}))
        .await
        .unwrap_err();
    let requests = portal.requests().len();
    let second = client
        .call(&portal.member_id(), "app.info", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        portal.requests().len(),
        requests,
        "no request while suspended"
    );
    let now = openchannel_gateway::clock::Clock::system().now_secs();
    for err in [first, second] {
        match openchannel_gateway::bitrix::classify(&err) {
            openchannel_gateway::bitrix::Class::Transient {
                not_before: Some(t),
                ..
            } => assert!(t >= now + 86_000, "{err:?}"),
            other => panic!("{err:?} classified {other:?}"),
        }
    }
    assert_eq!(portal.refresh_count(), 0, "NO_AUTH_FOUND is not refreshed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_rate_seen_by_the_portal_stays_within_its_bucket() {
    let bucket = BucketConfig {
        rate_per_second: 10.0,
        burst: 5,
    };
    let portal = FakePortal::start(FakePortalConfig {
        bucket: Some(bucket),
        ..Default::default()
    })
    .await
    .unwrap();
    let (_dir, _store, client) = client_for(&portal, bucket.rate_per_second, bucket.burst).await;
    let start = Instant::now();
    let calls: Vec<_> = (0..25)
        .map(|_| {
            let (client, member) = (client.clone(), portal.member_id());
            tokio::spawn(async move { client.call(&member, "app.info", json!({})).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("no call is rejected");
    }
    let requests = portal.requests();
    assert_eq!(requests.len(), 25);
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    // Replay the arrivals through the portal's own rule.
    let mut arrivals: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    arrivals.sort();
    let (mut level, mut last) = (0.0f64, arrivals[0]);
    for at in arrivals {
        level = (level - at.duration_since(last).as_secs_f64() * bucket.rate_per_second).max(0.0);
        last = at;
        assert!(
            level + 1.0 <= f64::from(bucket.burst) + 1e-9,
            "level {level}"
        );
        level += 1.0;
    }
    // 5 pass at once, 20 more at 10/s.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_portals_are_renewed_well_before_their_refresh_token_expires() {
    use openchannel_gateway::idle_refresh;
    let (portal, _dir, store, client) = fresh().await;
    let member = portal.member_id();
    let now = openchannel_gateway::domain::now_ms();
    let day = 86_400_000;
    for (age_days, due) in [(1, false), (29, false), (31, true)] {
        let mut record = store.portal(&member).unwrap().unwrap();
        record.updated_at_ms = now - age_days * day;
        store.commit(move |d| d.put_portal(&record)).await.unwrap();
        assert_eq!(
            idle_refresh::due(&store, now).contains(&member),
            due,
            "{age_days} days"
        );
    }
    let before = store.portal(&member).unwrap().unwrap();
    client.refresh_now(&member).await.unwrap();
    let after = store.portal(&member).unwrap().unwrap();
    assert_eq!(portal.refresh_count(), 1);
    assert_ne!(after.refresh_token, before.refresh_token);
    assert!(idle_refresh::due(&store, now).is_empty(), "renewed now");
}
