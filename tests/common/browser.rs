//! A real headless Chromium, driven through chromedriver's W3C WebDriver API (plain JSON
//! over HTTP, so no TLS stack or driver crate is needed). Elements are found the way a
//! person finds them: by their label's text.
//!
//! When chromedriver or Chromium is missing the browser tests skip, unless
//! `OBOLE_REQUIRE_BROWSER=1` (set by `scripts/test`), when they fail.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "chromedriver";

/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

fn required() -> bool {
    std::env::var("OBOLE_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` (skip) when they are not
    /// installed and not required.
    pub async fn start() -> Option<Browser> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let driver = match driver {
            Ok(driver) if Path::new(CHROMIUM).exists() => driver,
            Ok(mut driver) => {
                let _ = driver.kill();
                assert!(!required(), "{CHROMIUM} is not installed");
                eprintln!("skipping: {CHROMIUM} is not installed");
                return None;
            }
            Err(error) => {
                assert!(!required(), "chromedriver did not start: {error}");
                eprintln!("skipping: chromedriver is not installed ({error})");
                return None;
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            let ready = http.get(format!("{base}/status")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,1800"],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Some(Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = answer["value"].get("error") {
            panic!("WebDriver {path}: {error} {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap().to_owned()
    }

    async fn find(&self, xpath: &str) -> String {
        let found = self
            .post("/element", json!({"using": "xpath", "value": xpath}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// The control whose label reads `label` (its own text, before any hint in a span).
    fn labelled(label: &str) -> String {
        format!("//*[@id=//label[normalize-space(text()[1])='{label}']/@for]")
    }

    /// Types `text` into the field labelled `label`.
    pub async fn fill(&self, label: &str, text: &str) {
        let field = self.find(&Self::labelled(label)).await;
        self.post(&format!("/element/{field}/clear"), json!({}))
            .await;
        self.post(&format!("/element/{field}/value"), json!({ "text": text }))
            .await;
    }

    /// Picks `option` in the list labelled `label`.
    pub async fn choose(&self, label: &str, option: &str) {
        let xpath = format!(
            "{}/option[normalize-space(.)='{option}']",
            Self::labelled(label)
        );
        let option = self.find(&xpath).await;
        self.post(&format!("/element/{option}/click"), json!({}))
            .await;
    }

    /// Ticks the checkbox or radio button whose label contains `text`.
    pub async fn tick(&self, text: &str) {
        let xpath = format!(
            "(//input[@id=//label[contains(normalize-space(.), \"{text}\")]/@for] | \
             //label[contains(normalize-space(.), \"{text}\")]/input)[1]"
        );
        let input = self.find(&xpath).await;
        self.post(&format!("/element/{input}/click"), json!({}))
            .await;
    }

    /// Presses the button that reads `text`.
    pub async fn press(&self, text: &str) {
        let button = self
            .find(&format!("//button[normalize-space(.)='{text}']"))
            .await;
        self.post(&format!("/element/{button}/click"), json!({}))
            .await;
    }

    /// Waits until the page's HTML contains `text`; returns it.
    pub async fn wait_for(&self, text: &str) -> String {
        for _ in 0..200 {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never showed {text:?}: {}", self.source().await);
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test must not leave chromedriver behind.
        let _ = self.driver.kill();
    }
}
