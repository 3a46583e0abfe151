use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A channel on a line of its own ("acme" on 107, others on 100 + the id's length).
fn channel(id: &str, secret: &str) -> String {
    let line = if id == "acme" {
        107
    } else {
        100 + id.len() as u64
    };
    channel_on(id, secret, line)
}

fn channel_on(id: &str, secret: &str, line: u64) -> String {
    format!(
        "[[channels]]\nid = \"{id}\"\nportal = \"a223c6b3710f85df22e9377d6c4f7553\"\nline = {line}\n\
         secret = \"{secret}\"\noutbound_url = \"https://messenger.example/hook\"\n"
    )
}

fn problems(result: Result<Settings, SettingsError>) -> Vec<String> {
    match result {
        Err(SettingsError::Invalid(p)) => p,
        other => panic!("expected invalid settings, got {other:?}"),
    }
}

#[test]
fn the_default_file_alone_is_valid_and_has_the_contract_defaults() {
    let s = Settings::load_from(None, env(&[])).expect("defaults load");
    assert_eq!(s.server.listen, "127.0.0.1:8080");
    assert_eq!(s.server.max_body_bytes, 1_048_576);
    assert_eq!(s.server.max_form_bytes, 262_144);
    assert_eq!(s.server.body_timeout_ms, 15_000);
    assert_eq!(s.bitrix.rate_per_second, 2.0);
    assert_eq!(s.bitrix.burst, 50);
    assert_eq!(s.connector.id, "ocgw");
    assert_eq!(s.deletions.max_batch, 50);
    assert_eq!(s.deletions.linger_ms, 200);
    assert_eq!(s.storage.cache_mb, 64);
    assert_eq!(s.storage.retention_days, 90);
    assert!(s.channels.is_empty());
}

#[test]
fn the_storage_cache_is_bounded() {
    let p = problems(Settings::load_from(
        None,
        env(&[("GATEWAY__STORAGE__CACHE_MB", "0")]),
    ));
    assert_eq!(p, vec!["storage.cache_mb must be between 1 and 65536"]);
    let s = Settings::load_from(None, env(&[("GATEWAY__STORAGE__CACHE_MB", "16")])).unwrap();
    assert_eq!(s.storage.cache_mb, 16);
}

#[test]
fn the_in_memory_pending_index_is_bounded_and_reaches_the_store() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.storage.pending_in_memory, 100_000);
    let s =
        Settings::load_from(None, env(&[("GATEWAY__STORAGE__PENDING_IN_MEMORY", "0")])).unwrap();
    let options = s.storage.store_options();
    assert_eq!(options.pending_in_memory, 0);
    assert_eq!(options.cache_bytes, 64 << 20);
    assert!(options.indexed);
    let p = problems(Settings::load_from(
        None,
        env(&[("GATEWAY__STORAGE__PENDING_IN_MEMORY", "10000001")]),
    ));
    assert_eq!(
        p,
        vec!["storage.pending_in_memory must be between 0 and 10000000"]
    );
}

#[test]
fn retention_is_in_days_and_zero_keeps_forever() {
    use std::time::Duration;
    let s = Settings::load_from(None, env(&[("GATEWAY__STORAGE__RETENTION_DAYS", "0")])).unwrap();
    assert_eq!(s.storage.retention().records, None);
    assert_eq!(s.storage.retention().replay, None);
    assert!(
        !s.storage.store_options().indexed,
        "nothing is indexed for pruning"
    );
    let s = Settings::load_from(None, env(&[("GATEWAY__STORAGE__RETENTION_DAYS", "3")])).unwrap();
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(s.storage.retention().records, Some(3 * day));
    assert_eq!(s.storage.retention().replay, Some(3 * day));
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.storage.retention().records, Some(90 * day));
    assert_eq!(
        s.storage.retention().replay,
        Some(7 * day),
        "replay: at most 7 days"
    );
    let p = problems(Settings::load_from(
        None,
        env(&[("GATEWAY__STORAGE__RETENTION_DAYS", "99999")]),
    ));
    assert_eq!(
        p,
        vec!["storage.retention_days must be between 0 (keep forever) and 36500"]
    );
}

#[test]
fn a_config_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let (_dir, path) = write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:9000\"\n[deletions]\nlinger_ms = 50\n{}",
        channel("acme", SECRET)
    ));
    let s = Settings::load_from(
        Some(path),
        env(&[
            ("GATEWAY__SERVER__LISTEN", "127.0.0.1:0"),
            ("GATEWAY__BITRIX__BURST", "250"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(s.server.listen, "127.0.0.1:0");
    assert_eq!(s.bitrix.burst, 250);
    assert_eq!(s.deletions.linger_ms, 50);
    assert_eq!(s.channels.len(), 1);
    assert_eq!(s.channel("acme").map(|c| c.line), Some(107));
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let err = Settings::load_from(Some("/nonexistent/gw.toml".into()), env(&[])).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/gw.toml"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_so_typos_do_not_pass_silently() {
    let (_dir, path) = write_config("[server]\nlisten_addr = \"127.0.0.1:1\"\n");
    let err = Settings::load_from(Some(path), env(&[])).unwrap_err();
    assert!(err.to_string().contains("listen_addr"), "{err}");
}

#[test]
fn each_invalid_value_is_named_in_one_message() {
    let (_dir, path) = write_config(&format!(
        "[server]\nlisten = \"not an address\"\n[connector]\nid = \"Bad.Id\"\n{}{}{}",
        channel("acme", SECRET),
        channel("acme", SECRET),
        channel("other", "whsec_not*base64")
    ));
    let p = problems(Settings::load_from(Some(path), env(&[])));
    let all = p.join("\n");
    assert!(all.contains("server.listen"), "{all}");
    assert!(all.contains("connector.id"), "{all}");
    assert!(all.contains("duplicate channel id"), "{all}");
    assert!(
        all.contains("secret is not a Standard Webhooks secret"),
        "{all}"
    );
    assert_eq!(p.len(), 4, "{all}");
}

#[test]
fn bad_channel_ids_lines_and_urls_are_rejected() {
    let (_dir, path) = write_config(
        "[[channels]]\nid = \"UPPER\"\nportal = \"abc\"\nline = 0\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\noutbound_url = \"ftp://x\"\n",
    );
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("id must be"), "{all}");
    assert!(all.contains("line must be"), "{all}");
    assert!(all.contains("outbound_url"), "{all}");
}

#[test]
fn masked_output_never_contains_a_secret() {
    let (_dir, path) = write_config(&format!(
        "[bitrix]\nclient_secret = \"very-secret-value\"\n[admin]\ntoken = \"admin-token-xyz\"\n{}",
        channel("acme", SECRET)
    ));
    let s = Settings::load_from(Some(path), env(&[])).expect("valid");
    let text = s.masked();
    for secret in ["very-secret-value", "admin-token-xyz", SECRET, "MfKQ9r8G"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("client_secret = \"***\""), "{text}");
    let debug = format!("{s:?}");
    assert!(!debug.contains("very-secret-value") && !debug.contains("admin-token-xyz"));
}

#[test]
fn id_rules_match_the_contract() {
    assert!(is_connector_id("ocgw_2"));
    assert!(!is_connector_id("ocgw-2"));
    assert!(!is_connector_id(""));
    assert!(is_channel_id("acme-eu_1"));
    assert!(!is_channel_id(&"a".repeat(65)));
}

#[test]
fn one_channel_per_portal_and_line() {
    let (_dir, path) = write_config(&format!(
        "{}{}",
        channel_on("acme", SECRET, 107),
        channel_on("beta", SECRET, 107)
    ));
    let p = problems(Settings::load_from(Some(path), env(&[])));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("beta") && p[0].contains("line 107"), "{p:?}");
}

#[test]
fn v1_oauth_url_is_refused_with_a_message_naming_oauth_servers() {
    let (_dir, path) =
        write_config("[bitrix]\noauth_url = \"https://oauth.bitrix.info/oauth/token/\"\n");
    let p = problems(Settings::load_from(Some(path), env(&[])));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("bitrix.oauth_url") && p[0].contains("bitrix.oauth_servers"),
        "{p:?}"
    );
}

#[test]
fn trusted_servers_are_base_urls_and_match_server_endpoints_exactly() {
    let (_dir, path) = write_config(
        "[bitrix]\noauth_servers = [\"https://oauth.bitrix.info\", \"ftp://x/\"]\nportals = [\"not a member id\"]\n",
    );
    let p = problems(Settings::load_from(Some(path), env(&[])));
    let all = p.join("\n");
    assert!(
        all.contains("oauth_servers[0]") && all.contains("ending in"),
        "{all}"
    );
    assert!(all.contains("oauth_servers[1]"), "{all}");
    assert!(all.contains("bitrix.portals[0]"), "{all}");
    let defaults = Settings::load_from(None, env(&[])).unwrap().bitrix;
    assert_eq!(
        defaults.trusted_server("https://oauth.bitrix.info/rest/"),
        Some("https://oauth.bitrix.info/")
    );
    assert_eq!(
        defaults.trusted_server("https://oauth.bitrix24.tech/rest/"),
        Some("https://oauth.bitrix24.tech/")
    );
    for untrusted in [
        "https://oauth.bitrix.info.evil.example/rest/",
        "https://oauth.bitrix.info/rest/x",
        "https://evil.example/?https://oauth.bitrix.info/rest/",
        "http://oauth.bitrix.info/rest/",
        "",
    ] {
        assert_eq!(defaults.trusted_server(untrusted), None, "{untrusted}");
    }
    assert!(defaults.portal_allowed("anything"));
}

#[test]
fn body_limits_are_checked() {
    let (_dir, path) = write_config("[server]\nmax_form_bytes = 100\nbody_timeout_ms = 0\n");
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("server.max_form_bytes"), "{all}");
    assert!(all.contains("server.body_timeout_ms"), "{all}");
}

#[test]
fn credentials_in_urls_are_masked() {
    assert_eq!(
        mask_url("https://bot:s3cret@m.example/hook?x=1"),
        "https://***@m.example/hook?x=1"
    );
    assert_eq!(
        mask_url("https://token@m.example/"),
        "https://***@m.example/"
    );
    assert_eq!(mask_url("https://m.example/hook"), "https://m.example/hook");
    assert_eq!(mask_url("not a url user:pw@host"), "***@host");
}

const BOT_TOKEN: &str = "123456789:AAbot-token_secret9";
const TG_SECRET: &str = "tg-webhook_SECRET-42";

fn telegram_channel(extra: &str) -> String {
    format!(
        "[[channels]]\nid = \"tg-shop\"\nplatform = \"telegram\"\nportal = \"a223c6b3710f85df22e9377d6c4f7553\"\n\
         line = 3\nsecret = \"{SECRET}\"\n{extra}"
    )
}

#[test]
fn channels_are_generic_by_default_and_generic_still_needs_an_outbound_url() {
    let (_d, path) = write_config(&channel("acme", SECRET));
    let s = Settings::load_from(Some(path), env(&[])).expect("valid");
    assert_eq!(s.channels[0].platform, Platform::Generic);
    assert!(!s.channels[0].is_telegram());
    let (_d, path) = write_config(
        "[[channels]]\nid = \"acme\"\nportal = \"abc\"\nline = 1\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
    );
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("outbound_url is required"), "{all}");
}

#[test]
fn a_telegram_channel_loads_with_the_default_api_url_and_no_outbound_url() {
    let (_d, path) = write_config(&telegram_channel(&format!(
        "[channels.telegram]\nbot_token = \"{BOT_TOKEN}\"\nwebhook_secret = \"{TG_SECRET}\"\n"
    )));
    let s = Settings::load_from(Some(path), env(&[])).expect("valid");
    let ch = &s.channels[0];
    assert!(ch.is_telegram());
    assert_eq!(ch.outbound_url, None);
    let tg = ch.telegram.as_ref().expect("telegram section");
    assert_eq!(tg.api_url, "https://api.telegram.org");
    assert_eq!(tg.bot_token.expose_secret(), BOT_TOKEN);
    let masked = s.masked();
    assert!(masked.contains("platform = \"telegram\""), "{masked}");
    assert!(masked.contains("bot_token = \"***\""), "{masked}");
    assert!(masked.contains("webhook_secret = \"***\""), "{masked}");
    assert!(
        !masked.contains(BOT_TOKEN) && !masked.contains("AAbot"),
        "{masked}"
    );
    assert!(!masked.contains(TG_SECRET), "{masked}");
}

#[test]
fn telegram_settings_are_checked_without_quoting_the_secrets() {
    let (_d, path) = write_config(&telegram_channel(
        "[channels.telegram]\nbot_token = \"no-colon-secretvalue\"\nwebhook_secret = \"has space secretvalue\"\napi_url = \"ftp://x\"\n",
    ));
    let found = problems(Settings::load_from(Some(path), env(&[])));
    let all = found.join("\n");
    assert!(all.contains("telegram.bot_token"), "{all}");
    assert!(all.contains("telegram.webhook_secret"), "{all}");
    assert!(all.contains("telegram.api_url"), "{all}");
    assert!(!all.contains("secretvalue"), "a secret was quoted: {all}");

    let (_d, path) = write_config(&telegram_channel(""));
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("needs a [channels.telegram] section"), "{all}");

    let (_d, path) = write_config(&format!(
        "{}[channels.telegram]\nbot_token = \"{BOT_TOKEN}\"\nwebhook_secret = \"{TG_SECRET}\"\n",
        channel("acme", SECRET)
    ));
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("only for platform = \"telegram\""), "{all}");

    let long = "a".repeat(257);
    let (_d, path) = write_config(&telegram_channel(&format!(
        "[channels.telegram]\nbot_token = \"{BOT_TOKEN}\"\nwebhook_secret = \"{long}\"\n"
    )));
    let all = problems(Settings::load_from(Some(path), env(&[]))).join("\n");
    assert!(all.contains("1 to 256"), "{all}");
}

#[test]
fn secret_token_and_bot_token_shapes() {
    assert!(is_telegram_secret_token("a"));
    assert!(is_telegram_secret_token(&"Z_-9".repeat(64)));
    assert!(!is_telegram_secret_token(""));
    assert!(!is_telegram_secret_token(&"a".repeat(257)));
    assert!(!is_telegram_secret_token("a.b"));
    assert!(is_bot_token("1:A"));
    assert!(!is_bot_token(":A"));
    assert!(!is_bot_token("12a:A"));
    assert!(!is_bot_token("12:"));
    assert!(!is_bot_token("12:a/b"));
}
