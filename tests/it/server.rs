//! `reseat serve`: health, readiness, metrics, limits, request ids, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use tokio::sync::Notify;

use crate::support::{TestDb, reseat_bin, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        health.headers().contains_key("x-request-id"),
        "every response carries a request id"
    );
    assert_eq!(health.text().await.unwrap(), "ok\n");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let body = metrics.text().await.unwrap();
    assert!(
        body.contains(
            r#"reseat_http_requests_total{route="/healthz",method="GET",status="200"} 1"#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"reseat_queue_jobs{state="queued"} 0"#),
        "{body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.close().await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // The process itself is still up.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let app = spawn_app_with(
        TestDb::sqlite(),
        |config| config.server.body_limit_bytes = 4096,
        axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        ),
    )
    .await;
    let small = app
        .client
        .post(app.url("/echo"))
        .body("x".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    let big = app
        .client
        .post(app.url("/echo"))
        .body("x".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
}

#[tokio::test]
async fn shutdown_finishes_the_in_flight_request() {
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let slow = axum::Router::new().route(
        "/slow",
        get(move || {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        }),
    );
    let app = spawn_app_with(TestDb::sqlite(), |_| {}, slow).await;
    let request = tokio::spawn(app.client.get(app.url("/slow")).send());
    started.notified().await;
    let url = app.url("/healthz");
    app.stop().await.expect("clean stop");
    let response = request.await.unwrap().expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    // And nothing listens any more.
    assert!(reqwest::get(url).await.is_err());
}

#[test]
fn serve_in_an_empty_directory_creates_the_database_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(reseat_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("RESEAT_DATABASE__URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("reseat starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening: ")
        .expect("prints its address")
        .to_string();
    assert!(
        dir.path().join("reseat.db").exists(),
        "database created in the working directory"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean exit");
}

#[tokio::test]
async fn metrics_behind_a_token_refuse_without_it() {
    let app = crate::support::spawn_app_with(
        crate::support::TestDb::sqlite(),
        |config| config.server.metrics_token = Some("metrics-token-0123".into()),
        axum::Router::new(),
    )
    .await;
    for authorization in [None, Some("Bearer wrong"), Some("Basic metrics-token-0123")] {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert!(
            !response
                .text()
                .await
                .unwrap()
                .contains("reseat_http_requests_total")
        );
    }
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("reseat_queue_jobs"));
    app.stop().await.unwrap();
}
