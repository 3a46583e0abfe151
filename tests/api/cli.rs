//! The binary's `check-config`: clear errors, exit codes, secrets masked.

use std::process::Command;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openchannel-gateway"));
    cmd.env_remove("GATEWAY_CONFIG");
    cmd
}

#[test]
fn check_config_prints_effective_values_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        "[bitrix]\nclient_secret = \"topsecret-1\"\n[admin]\ntoken = \"admintoken-2\"\n[[channels]]\nid = \"acme\"\nportal = \"abc123\"\nline = 7\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\noutbound_url = \"https://m.example/hook\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("GATEWAY__SERVER__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("retention_days = 90\n"), "{text}");
    for secret in ["topsecret-1", "admintoken-2", "MfKQ9r8G"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn invalid_settings_stop_start_up_with_one_clear_message() {
    let out = gateway()
        .arg("serve")
        .env("GATEWAY__CONNECTOR__ID", "Not.Valid")
        .env("GATEWAY__SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connector.id") && err.contains("server.listen"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_reported() {
    let out = gateway()
        .args(["check-config", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_goes_through_the_running_gateways_admin_api() {
    let app = crate::helpers::spawn_app().await;
    let port = app.base.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\ntoken = \"{}\"\n[storage]\npath = \"{}\"\n", crate::helpers::ADMIN_TOKEN, dir.path().join("unused").display()),
    )
    .unwrap();
    let member = app.portal.member_id();
    let out = tokio::task::spawn_blocking(move || {
        gateway()
            .args(["setup", "--portal", &member, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["setup"]["bound"], serde_json::json!([]));
    assert_eq!(report["setup"]["lines"].as_array().unwrap().len(), 2);
    assert!(
        !dir.path().join("unused").exists(),
        "the local data directory was not touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_runs_on_the_data_directory_when_no_gateway_is_running() {
    let app = crate::helpers::spawn_app().await;
    let member = app.portal.member_id();
    let config = app.config_path().clone();
    let (_dir, _config, portal) = app.shutdown().await;
    let registrations = portal.connectors()[0].register_count;
    let run = |portal_id: String, config: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            gateway()
                .args(["setup", "--portal", &portal_id, "--config"])
                .arg(&config)
                .output()
                .unwrap()
        })
    };
    let out = run(member, config.clone()).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(portal.connectors()[0].register_count, registrations + 1);
    let unknown = run("nobody".into(), config).await.unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_reports_each_step_and_purges_the_portal() {
    let app = crate::helpers::spawn_app().await;
    let member = app.portal.member_id();
    let config = app.config_path().clone();
    let (dir, _config, portal) = app.shutdown().await;
    let id = member.clone();
    let out = tokio::task::spawn_blocking(move || {
        gateway()
            .args(["teardown", "--portal", &id, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let steps: Vec<String> = report["teardown"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"imconnector.unregister ocgw".to_string()),
        "{steps:?}"
    );
    assert_eq!(
        steps
            .iter()
            .filter(|s| s.starts_with("event.unbind"))
            .count(),
        8,
        "six connector events and ONAPPINSTALL / ONAPPUPDATE"
    );
    assert_eq!(steps.last().map(String::as_str), Some("purge"));
    assert!(portal.connectors().is_empty());
    let store = openchannel_gateway::store::Store::open(&dir.path().join("data")).unwrap();
    assert!(store.portal(&member).unwrap().is_none());
}

#[test]
fn check_config_masks_credentials_in_urls_and_survives_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        "[bitrix]\noauth_servers = [\"https://oauser:oapass-4@oauth.example/\"]\n\
         [[channels]]\nid = \"acme\"\nportal = \"abc123\"\nline = 7\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\noutbound_url = \"https://hookuser:hookpass-3@m.example/hook\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in ["hookuser", "hookpass-3", "oauser", "oapass-4"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("https://***@m.example/hook"), "{text}");
    assert!(text.contains("https://***@oauth.example/"), "{text}");

    // stdout is a pipe whose reader is already gone: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = gateway()
        .args(["check-config", "--config"])
        .arg(&path)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
