//! The settings page and the install page in a real browser: Debian's headless chromium, driven
//! through chromedriver (WebDriver) with fantoccini. A local page POSTs the form cross-origin, as
//! Bitrix24's frame does. Settings page: the test reads it, presses Deactivate and Activate, and
//! saves a screenshot to `<target dir>/placement-screenshot.png`. Install page: Bitrix24's JS
//! library is the fake portal's stand-in (chromium maps `api.bitrix24.com` to it), and the test
//! follows `BX24.installFinish()` to the `ONAPPINSTALL` event that completes the install
//! (`<target dir>/install-screenshot.png`).
//!
//! chromium and chromedriver are required: `scripts/test` installs them (Debian packages
//! `chromium` and `chromium-driver`); without them this test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::placement::{page_fields, page_query};

const INSTALL_HINT: &str = "install them with `apt-get install -y chromium chromium-driver` \
     (Debian), or run `scripts/test`, which does it for you";
/// Longest wait for the browser (start, page loads).
const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// chromedriver in its own process group; dropping it kills the group (chromedriver and the
/// browsers it started), even when the test panics.
struct Chromedriver {
    child: Child,
    port: u16,
    /// The browser's fresh profile, removed after the browser is gone.
    profile: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first executable called `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_chromedriver() -> Chromedriver {
    use std::os::unix::process::CommandExt as _;
    let Some(binary) = on_path("chromedriver") else {
        panic!("chromedriver is not installed (not on PATH): {INSTALL_HINT}");
    };
    let profile = tempfile::tempdir().expect("tempdir");
    let log = profile.path().join("chromedriver.log");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {INSTALL_HINT}"));
    let mut driver = Chromedriver {
        child,
        port,
        profile,
        log,
    };
    openchannel_gateway::tls::install_provider();
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
    loop {
        let status = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await;
        if let Ok(reply) = status
            && reply.status() == 200
        {
            return driver;
        }
        if let Ok(Some(exit)) = driver.child.try_wait() {
            panic!(
                "chromedriver exited at start ({exit}): {}",
                driver.log_tail()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not answer within {BROWSER_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Chromedriver {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// A headless chromium session with a fresh profile.
    async fn browser(&self) -> Client {
        self.browser_with(&[]).await
    }

    /// A headless chromium session with a fresh profile and more command-line switches.
    async fn browser_with(&self, extra: &[String]) -> Client {
        let Some(chromium) = on_path("chromium") else {
            panic!("chromium is not installed (not on PATH): {INSTALL_HINT}");
        };
        let data_dir = self.profile.path().join(format!("profile-{}", extra.len()));
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", data_dir.display()),
        ];
        args.extend(extra.iter().cloned());
        let options = json!({ "binary": chromium, "args": args });
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("no browser session ({e}); {}", self.log_tail()))
    }
}

fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// A page that POSTs the placement form to the gateway at once, as Bitrix24's frame does.
fn opener_html(action: &str, fields: &serde_json::Map<String, Value>) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                attr_escape(name),
                attr_escape(value.as_str().unwrap_or_default())
            )
        })
        .collect();
    format!(
        r#"<!doctype html><html><body><form id="f" method="post" action="{}">{inputs}
<noscript><button>Open</button></noscript></form>
<script>document.getElementById("f").submit();</script></body></html>"#,
        attr_escape(action)
    )
}

/// Serve `html` at `/` on a loopback port of its own (another origin than the gateway).
fn serve_opener(html: String) -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let html = html.clone();
        App::new().route(
            "/",
            web::get().to(move || {
                let html = html.clone();
                async move { HttpResponse::Ok().content_type("text/html").body(html) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, handle)
}

/// Wait until the page's state badge reads `label`.
async fn wait_for_state(browser: &Client, label: &str) {
    let xpath = format!("//span[@id='state' and normalize-space()='{label}']");
    if let Err(e) = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
    {
        let source = browser.source().await.unwrap_or_default();
        panic!("state {label:?} not shown ({e}); page:\n{source}");
    }
}

async fn click(browser: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    browser
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no {label} button: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {label}: {e}"));
}

async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory");
    std::fs::create_dir_all(target).expect("target dir");
    let path = target.join(name);
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("write screenshot");
    path
}

#[tokio::test]
async fn the_settings_page_works_in_headless_chromium() {
    let driver = start_chromedriver().await;
    let app = spawn_with(TestOptions {
        ..Default::default()
    })
    .await;
    let action = format!("{}/bitrix/placement?{}", app.base, page_query(&app));
    let (opener, opener_server) = serve_opener(opener_html(&action, &page_fields(&app, "7")));
    let browser = driver.browser().await;
    browser
        .set_window_size(1000, 820)
        .await
        .expect("window size");
    browser.goto(&opener).await.expect("open the opener page");

    wait_for_state(&browser, "Connected").await;
    let source = browser.source().await.expect("page source");
    assert!(source.contains("<code>acme</code>"), "{source}");
    assert!(source.contains("Open line <b>7</b>"));

    click(&browser, "Deactivate").await;
    wait_for_state(&browser, "Inactive").await;
    assert!(!app.portal.line("ocgw", LINE).expect("line 7").active);
    screenshot(&browser, "placement-screenshot-inactive.png").await;

    click(&browser, "Activate").await;
    wait_for_state(&browser, "Connected").await;
    assert!(app.portal.line("ocgw", LINE).expect("line 7").active);
    let notice = browser
        .find(Locator::Css(".notice"))
        .await
        .expect("notice")
        .text()
        .await
        .expect("notice text");
    assert!(notice.contains("now active on line 7"), "{notice}");
    let saved = screenshot(&browser, "placement-screenshot.png").await;
    eprintln!("screenshot: {}", saved.display());

    browser.close().await.expect("end the browser session");
    opener_server.stop(false).await;
    drop(driver);
}

#[tokio::test]
async fn the_install_page_finishes_the_install_in_headless_chromium() {
    let driver = start_chromedriver().await;
    let app = spawn_with(TestOptions {
        install: false,
        ..Default::default()
    })
    .await;
    let (query, body) = app.portal.install_page_request();
    let fields = match openchannel_gateway::bitrix::form::decode(&body).expect("form") {
        Value::Object(map) => map,
        other => panic!("not a form: {other}"),
    };
    let action = format!("{}/bitrix/install?{query}", app.base);
    let (opener, opener_server) = serve_opener(opener_html(&action, &fields));
    // Bitrix24's JS library comes from the fake portal.
    let rules = format!(
        "--host-resolver-rules=MAP api.bitrix24.com {}",
        app.portal.domain()
    );
    let browser = driver.browser_with(&[rules]).await;
    browser
        .set_window_size(900, 360)
        .await
        .expect("window size");
    browser.goto(&opener).await.expect("open the opener page");
    let done = "//p[@id='state' and starts-with(normalize-space(), 'Done.')]";
    if let Err(e) = browser
        .wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::XPath(done))
        .await
    {
        let source = browser.source().await.unwrap_or_default();
        panic!("the page did not finish the install ({e}); page:\n{source}");
    }
    app.portal
        .wait_until(BROWSER_WAIT, |p| p.install_finished() == 1)
        .await
        .expect("BX24.installFinish() reached the portal");
    let member = app.portal.member_id();
    app.wait_for(
        "the ONAPPINSTALL event brought the application token",
        |s| {
            s.portal(&member)
                .unwrap()
                .is_some_and(|p| p.application_token == app.portal.application_token())
        },
    )
    .await;
    let saved = screenshot(&browser, "install-screenshot.png").await;
    eprintln!("screenshot: {}", saved.display());
    browser.close().await.expect("end the browser session");
    opener_server.stop(false).await;
    drop(driver);
}
