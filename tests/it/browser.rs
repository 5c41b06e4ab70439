//! A minimal headless Chromium driver over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages separated by NUL on fds 3 and 4), so the
//! browser tests need no WebDriver server and no extra crates.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Browser {
    child: Child,
    input: ChildStdin,
    pending: Pending,
    /// Every event received, in order.
    pub events: Arc<Mutex<Vec<Value>>>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// The Chromium binary, or `None` (the caller skips unless RESEAT_REQUIRE_BROWSER=1).
pub fn chromium() -> Option<String> {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return Some(candidate.to_string());
        }
    }
    None
}

impl Browser {
    pub async fn launch(binary: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // fd 3 is what Chromium reads commands from, fd 4 where it writes: the shell maps
        // them onto our stdin and stdout pipes.
        let script = format!(
            "exec {binary} --headless --no-sandbox --disable-gpu --disable-background-networking \
             --disable-component-update --disable-sync --no-first-run --disable-extensions \
             --disable-dev-shm-usage --user-data-dir={} --remote-debugging-pipe about:blank \
             3<&0 4>&1 0</dev/null 1>/dev/null",
            profile.path().display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        {
            let pending = pending.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(output);
                let mut buffer = Vec::new();
                while let Ok(n) = reader.read_until(0, &mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    if buffer.last() == Some(&0) {
                        buffer.pop();
                    }
                    if let Ok(message) = serde_json::from_slice::<Value>(&buffer) {
                        match message.get("id").and_then(Value::as_u64) {
                            Some(id) => {
                                if let Some(tx) = pending.lock().unwrap().remove(&id) {
                                    let _ = tx.send(message);
                                }
                            }
                            None => events.lock().unwrap().push(message),
                        }
                    }
                    buffer.clear();
                }
            });
        }
        let mut browser = Browser {
            child,
            input,
            pending,
            events,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        browser
    }

    /// Sends a command (to the page once attached) and waits for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).await.unwrap();
        self.input.flush().await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method}"))
            .unwrap();
        if let Some(error) = reply.get("error") {
            panic!("{method} failed: {error}");
        }
        reply["result"].clone()
    }

    /// Evaluates JavaScript in the page (DevTools evaluation, not a page script).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    async fn mark_document(&mut self) {
        self.eval("window.__reseatOld = true").await;
    }

    /// Waits until the marked document was replaced by a loaded one.
    async fn wait_new_document(&mut self) {
        for _ in 0..600 {
            let ready = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": "window.__reseatOld === undefined && document.readyState === 'complete'", "returnByValue": true }),
                )
                .await;
            if ready["result"]["value"] == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page did not load");
    }

    pub async fn goto(&mut self, url: &str) {
        self.mark_document().await;
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_new_document().await;
    }

    /// Clicks the element `selector` selects and waits for the page it leads to.
    pub async fn click_and_wait(&mut self, selector: &str) {
        self.mark_document().await;
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
                json!(selector)
            ))
            .await;
        assert_eq!(found, json!(true), "nothing matches {selector}");
        self.wait_new_document().await;
    }

    /// Sets the value of a form field.
    pub async fn fill(&mut self, selector: &str, value: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {}; return true; }})()",
                json!(selector),
                json!(value)
            ))
            .await;
        assert_eq!(found, json!(true), "nothing matches {selector}");
    }

    pub async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn url(&mut self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the whole page.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Events of one method received so far.
    pub fn events_named(&self, method: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == method)
            .cloned()
            .collect()
    }

    pub async fn close(mut self) {
        // Browser-level, and the answer may never come: the browser is gone.
        let mut bytes = serde_json::to_vec(&json!({ "id": 0, "method": "Browser.close" })).unwrap();
        bytes.push(0);
        let _ = self.input.write_all(&bytes).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
