//! `setup --portal MEMBER_ID`: through the running gateway's admin API when one answers on
//! `server.listen`, otherwise directly on the data directory (which a running gateway locks).

use std::process::ExitCode;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::bitrix::BitrixClient;
use crate::metrics::Metrics;
use crate::outbox::{Context, setup_now};
use crate::settings::Settings;
use crate::store::Store;

/// Run the connector setup of one portal and print what it did.
pub async fn setup(settings: Settings, portal: &str) -> ExitCode {
    crate::tls::install_provider();
    match via_admin_api(&settings, portal).await {
        Some(Ok(report)) => {
            println!("{report}");
            return ExitCode::SUCCESS;
        }
        Some(Err(message)) => {
            eprintln!("{message}");
            return ExitCode::from(1);
        }
        None => {}
    }
    let store = match Store::open(&settings.storage.path) {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "cannot open the data directory {} ({e}); if a gateway is running, set admin.token so that this command can use its admin API",
                settings.storage.path.display()
            );
            return ExitCode::from(1);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let client = match BitrixClient::new(settings.bitrix.clone(), store.clone(), metrics.clone()) {
        Ok(client) => Arc::new(client),
        Err(e) => {
            eprintln!("cannot build the HTTP client: {e}");
            return ExitCode::from(1);
        }
    };
    let ctx = Context::new(Arc::new(settings), store, client, metrics);
    match setup_now(&ctx, None, portal).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::json!({ "member_id": portal, "setup": report })
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("setup of portal {portal} failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// None when no gateway answers (run locally); Some(result) otherwise.
async fn via_admin_api(settings: &Settings, portal: &str) -> Option<Result<String, String>> {
    let addr = settings.listen_addr().ok().filter(|a| a.port() != 0)?;
    let token = settings.admin.token.expose_secret();
    let url = format!("http://{addr}/v1/portals/{portal}/setup");
    let reply = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let status = reply.status();
    let body = reply.text().await.unwrap_or_default();
    Some(if status.is_success() {
        Ok(body)
    } else if token.is_empty() {
        Err("a gateway is running on server.listen but admin.token is empty: set it to use the admin API".into())
    } else {
        Err(format!(
            "the running gateway answered HTTP {status}: {body}"
        ))
    })
}
