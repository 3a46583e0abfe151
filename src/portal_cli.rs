//! `setup --portal MEMBER_ID` and `teardown --portal MEMBER_ID`: through the running gateway's
//! admin API when one answers on `server.listen`, otherwise directly on the data directory
//! (which a running gateway locks).

use std::process::ExitCode;
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::bitrix::BitrixClient;
use crate::metrics::Metrics;
use crate::outbox::{Context, setup_now};
use crate::settings::Settings;
use crate::store::Store;

/// An operation on one portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Setup,
    Teardown,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Setup => "setup",
            Operation::Teardown => "teardown",
        }
    }
}

/// Run `operation` on one portal and print its report (JSON).
pub async fn run(settings: Settings, operation: Operation, portal: &str) -> ExitCode {
    crate::tls::install_provider();
    if let Some(answer) = via_admin_api(&settings, operation, portal).await {
        return match answer {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("{message}");
                ExitCode::from(1)
            }
        };
    }
    if let Err(e) = crate::data_dir::secure(&settings.storage.path) {
        eprintln!(
            "cannot make the data directory {} private: {e}",
            settings.storage.path.display()
        );
        return ExitCode::from(1);
    }
    let store = match Store::open_configured(
        &settings.storage.path,
        &settings.storage.store_options(),
    ) {
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
    let outcome = match operation {
        Operation::Setup => setup_now(&ctx, None, portal).await.map(|report| {
            (
                serde_json::json!({ "member_id": portal, "setup": report }),
                true,
            )
        }),
        Operation::Teardown => crate::teardown::run(&ctx.client, &ctx.settings, &ctx.store, portal)
            .await
            .map(|report| {
                let completed = report.completed;
                (
                    serde_json::json!({ "member_id": portal, "teardown": report }),
                    completed,
                )
            }),
    };
    match outcome {
        Ok((report, true)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok((report, false)) => {
            println!("{report}");
            eprintln!(
                "{} of portal {portal} is incomplete: run it again",
                operation.name()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{} of portal {portal} failed: {e}", operation.name());
            ExitCode::from(1)
        }
    }
}

/// None when no gateway answers (run locally); Some(result) otherwise.
async fn via_admin_api(
    settings: &Settings,
    operation: Operation,
    portal: &str,
) -> Option<Result<String, String>> {
    let addr = settings.listen_addr().ok().filter(|a| a.port() != 0)?;
    let token = settings.admin.token.expose_secret();
    let url = format!("http://{addr}/v1/portals/{portal}/{}", operation.name());
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
