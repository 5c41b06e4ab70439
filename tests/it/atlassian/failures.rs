//! Retries, rate limits and errors. Timing tests run on tokio's paused clock over a scripted
//! transport (a real socket would let the paused clock jump to the request timeout while the
//! bytes are in flight); the others run against the fake server.

use super::fake::{ADMIN_KEY, FakeServer, Reply, SITE_EMAIL, SITE_TOKEN, clients, config};
use reqwest::header::HeaderMap;
use reseat::atlassian::http::BoxFuture;
use reseat::atlassian::{
    AccountId, AtlassianClients, AtlassianError, GroupId, IssueKey, MembershipOutcome, Transport,
    TransportError, TransportRequest, TransportResponse,
};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Outcome = Result<TransportResponse, TransportError>;

#[derive(Default)]
struct Scripted {
    replies: Mutex<VecDeque<Outcome>>,
    sent: Mutex<Vec<(String, Instant)>>,
}

impl Transport for Scripted {
    fn send(&self, request: TransportRequest) -> BoxFuture<'_, Outcome> {
        self.sent
            .lock()
            .expect("lock")
            .push((request.url.path().to_owned(), Instant::now()));
        let reply = self
            .replies
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or_else(|| Ok(reply(200, &[], "[]")));
        Box::pin(async move { reply })
    }
}

fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> TransportResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().expect("header"));
    }
    TransportResponse {
        status,
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

fn scripted(replies: Vec<Outcome>) -> (Arc<Scripted>, AtlassianClients) {
    let transport = Arc::new(Scripted {
        replies: Mutex::new(replies.into()),
        ..Scripted::default()
    });
    let clients =
        AtlassianClients::with_transport(&config("http://scripted.test"), transport.clone())
            .expect("clients");
    (transport, clients)
}

fn account() -> AccountId {
    AccountId::parse("5b10ac8d82e05b22cc7d4ef5").expect("account")
}

fn group() -> GroupId {
    GroupId::parse("3571b9a7-348f-414a-9087-8e1ea03a7df8").expect("group")
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_delays_the_call_by_at_least_that_long() {
    let (transport, clients) = scripted(vec![
        Ok(reply(429, &[("retry-after", "2")], "")),
        Ok(reply(200, &[], "[]")),
    ]);
    let start = Instant::now();
    let groups = clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect("retried");
    assert!(groups.is_empty());
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        start.elapsed()
    );
    let sent = transport.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].1 - sent[0].1 >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_503_then_200_succeeds_and_timeouts_and_drops_are_retried_for_reads() {
    let (transport, clients) = scripted(vec![
        Ok(reply(503, &[], "")),
        Err(TransportError::Timeout),
        Err(TransportError::Dropped("reset by peer".into())),
        Ok(reply(200, &[], "[]")),
    ]);
    clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect("fourth attempt");
    assert_eq!(transport.sent.lock().expect("lock").len(), 4);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let (transport, clients) = scripted(
        (0..10)
            .map(|_| Ok(reply(502, &[], "bad gateway")))
            .collect(),
    );
    let error = clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect_err("gives up");
    assert!(
        matches!(
            error,
            AtlassianError::Transient {
                status: Some(502),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        transport.sent.lock().expect("lock").len(),
        4,
        "max_attempts = 4"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_allowed_returns_rate_limited_at_once() {
    let (transport, clients) = scripted(vec![Ok(reply(429, &[("retry-after", "3600")], ""))]);
    let start = Instant::now();
    let error = clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect_err("too long");
    assert!(
        matches!(error, AtlassianError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3600)),
        "{error:?}"
    );
    assert_eq!(transport.sent.lock().expect("lock").len(), 1);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_calls_are_not_retried_blindly() {
    let issue = IssueKey::parse("HELP-1").expect("issue");
    let comment = r#"{"id":"9","body":"hi","public":true}"#;
    // A 500 or a dropped connection may have posted the comment: no retry.
    for failure in [
        Ok(reply(500, &[], "{}")),
        Err(TransportError::Dropped("eof".into())),
        Err(TransportError::Timeout),
    ] {
        let (transport, clients) = scripted(vec![failure, Ok(reply(201, &[], comment))]);
        let error = clients
            .jsm
            .as_ref()
            .expect("jsm")
            .add_comment(&issue, "hi", true)
            .await
            .expect_err("not retried");
        assert!(
            matches!(error, AtlassianError::Transient { .. }),
            "{error:?}"
        );
        assert_eq!(transport.sent.lock().expect("lock").len(), 1);
    }
    // A 429 or a refused connection means it never ran: retried.
    for refusal in [
        Ok(reply(429, &[("retry-after", "1")], "")),
        Err(TransportError::Connect("refused".into())),
    ] {
        let (transport, clients) = scripted(vec![refusal, Ok(reply(201, &[], comment))]);
        let posted = clients
            .jsm
            .as_ref()
            .expect("jsm")
            .add_comment(&issue, "hi", true)
            .await
            .expect("retried");
        assert_eq!(posted.id, "9");
        assert_eq!(transport.sent.lock().expect("lock").len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn the_client_side_rate_limit_spaces_requests() {
    let transport = Arc::new(Scripted::default());
    let mut config = config("http://scripted.test");
    config.jira.requests_per_second = 2;
    let clients = AtlassianClients::with_transport(&config, transport.clone()).expect("clients");
    let jira = clients.jira.as_ref().expect("jira");
    let start = Instant::now();
    for _ in 0..6 {
        jira.user_groups(&account()).await.expect("ok");
    }
    // A burst of 2, then one every 500 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn no_second_sees_more_requests_than_the_configured_rate() {
    let transport = Arc::new(Scripted::default());
    let mut config = config("http://scripted.test");
    config.jira.requests_per_second = 500;
    config.jira.concurrency = 8;
    let clients = AtlassianClients::with_transport(&config, transport.clone()).expect("clients");
    let jira = clients.jira.as_ref().expect("jira");
    // Idle first, so the limiter's burst is full, then 8 callers at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let who = account();
    let calls = (0..2_000).map(|_| jira.user_groups(&who));
    futures_util::future::join_all(calls).await;
    let sent: Vec<Instant> = transport
        .sent
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, at)| *at)
        .collect();
    assert_eq!(sent.len(), 2_000);
    // A fixed-window upstream counting from any request would never see more than 500.
    let busiest = (0..sent.len())
        .map(|i| {
            sent[i..]
                .iter()
                .take_while(|t| **t - sent[i] < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= 500, "{busiest} requests in one second");
    // And the rate is still used: 2,000 requests take about 4 s, not much more.
    let span = sent[sent.len() - 1] - sent[0];
    assert!(span < Duration::from_millis(4_300), "{span:?}");
}

#[tokio::test]
async fn a_503_then_200_succeeds_over_http() {
    let server = FakeServer::start(|_, count| match count {
        0 => Reply::raw(503, "busy"),
        _ => Reply::json(200, json!([])),
    })
    .await;
    let clients = clients(&server.base_url);
    clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect("second attempt");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_not_a_panic() {
    let server = FakeServer::start(|_, _| Reply::raw(200, r#"{"data": [{"account_id": 42"#)).await;
    let clients = clients(&server.base_url);
    let org = clients.org_id.clone().expect("org");
    let error = clients
        .admin
        .as_ref()
        .expect("admin")
        .users_page(&org, None)
        .await
        .expect_err("bad JSON");
    assert!(matches!(error, AtlassianError::Decode { .. }), "{error:?}");
    // Well-formed but wrong: an invalid account id is refused at the edge.
    let server =
        FakeServer::start(|_, _| Reply::json(200, json!([{"groupId": "../x", "name": "g"}]))).await;
    let clients = super::fake::clients(&server.base_url);
    let error = clients
        .jira
        .as_ref()
        .expect("jira")
        .user_groups(&account())
        .await
        .expect_err("bad id");
    assert!(
        matches!(&error, AtlassianError::Decode { message, .. } if message.contains("groupId")),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1, "decode errors are not retried");
}

#[tokio::test]
async fn a_401_is_unauthorized_and_not_retried() {
    let server = FakeServer::start(|_, _| {
        Reply::json(
            401,
            json!({"code": 401, "message": "Unauthorized; scope does not match"}),
        )
    })
    .await;
    let clients = clients(&server.base_url);
    let error = clients
        .admin
        .as_ref()
        .expect("admin")
        .orgs_page(None)
        .await
        .expect_err("401");
    assert!(
        matches!(&error, AtlassianError::Unauthorized { message } if message.contains("scope")),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn membership_already_in_place_is_success_end_to_end() {
    let server =
        FakeServer::start(
            |request, _| match (request.method.as_str(), request.path.as_str()) {
                ("POST", "/rest/api/3/group/user") => Reply::json(
                    400,
                    json!({"errorMessages":
            ["Cannot add user. User is already a member of 'jira-software-users'"], "errors": {}}),
                ),
                ("DELETE", "/wiki/rest/api/group/userByGroupId") => Reply::json(
                    404,
                    json!({"statusCode": 404,
            "message": "User 5b10ac8d82e05b22cc7d4ef5 is not a member of group confluence-users"}),
                ),
                ("DELETE", "/rest/api/3/group/user") => Reply::json(
                    404,
                    json!({"errorMessages": ["Specified group does not exist."]}),
                ),
                _ => Reply::raw(201, ""),
            },
        )
        .await;
    let clients = clients(&server.base_url);
    let (jira, confluence) = (
        clients.jira.as_ref().expect("jira"),
        clients.confluence.as_ref().expect("confluence"),
    );
    assert_eq!(
        jira.add_to_group(&group(), &account()).await.expect("add"),
        MembershipOutcome::AlreadyInPlace
    );
    assert_eq!(
        confluence
            .remove_from_group(&group(), &account())
            .await
            .expect("remove"),
        MembershipOutcome::AlreadyInPlace
    );
    assert_eq!(
        confluence
            .add_to_group(&group(), &account())
            .await
            .expect("add"),
        MembershipOutcome::Changed
    );
    let missing = jira
        .remove_from_group(&group(), &account())
        .await
        .expect_err("unknown group");
    assert!(
        matches!(missing, AtlassianError::NotFound { .. }),
        "{missing:?}"
    );
    let auth: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.authorization.clone().unwrap_or_default())
        .collect();
    assert!(
        auth.iter().all(|a| a.starts_with("Basic ")),
        "site APIs use Basic auth: {auth:?}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_errors_and_logs() {
    let logs = crate::support::LogBuffer::default();
    let _guard = logs.capture_at_trace();
    let server = FakeServer::start(|_, count| match count {
        0 => Reply::raw(429, "").header("retry-after", "0"),
        _ => Reply::json(401, json!({"message": "bad credentials"})),
    })
    .await;
    let clients = clients(&server.base_url);
    let error = clients
        .admin
        .as_ref()
        .expect("admin")
        .orgs_page(None)
        .await
        .expect_err("401");
    let requests = server.requests();
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {ADMIN_KEY}").as_str())
    );
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{SITE_EMAIL}:{SITE_TOKEN}"))
    };
    let logged = logs.text();
    assert!(
        logged.contains("retrying"),
        "the retry was logged: {logged}"
    );
    let shown = format!(
        "{clients:?} {:?} {error} {error:?} {logged}",
        config(&server.base_url)
    );
    for secret in [ADMIN_KEY, SITE_TOKEN, basic.as_str()] {
        assert!(!shown.contains(secret), "{secret} leaked into: {shown}");
    }
}

/// Removing an account from the directory: only the admin API's documented unknown-user
/// error is "already gone"; a 404 from a route that does not exist (the retired v1 paths, a
/// proxy) is a failure, so nothing still in the directory is ever recorded as deleted.
#[tokio::test]
async fn only_the_documented_unknown_user_error_counts_as_already_gone() {
    use reseat::atlassian::{DirectoryRemoval, OrgId};
    let account = AccountId::parse("5b10ac8d82e05b22cc7d4ef5").expect("account");
    let org = OrgId::parse(super::fake::ORG_ID).expect("org");
    for (body, expected) in [
        (
            json!({"errors": [{"code": "ADMIN-UAM-404-1", "status": "404", "title": "Unknown Resource"}]}),
            Some(DirectoryRemoval::AlreadyGone),
        ),
        (json!({"message": "Not Found"}), None),
        (json!({"errors": [{"title": "Not Found"}]}), None),
    ] {
        let server = FakeServer::start(move |request, _| {
            if request.method == "GET" && request.path.ends_with("/directories") {
                Reply::json(200, json!({"data": [{"directoryId": "d1"}], "links": {}}))
            } else {
                Reply::json(404, body.clone())
            }
        })
        .await;
        let clients = clients(&server.base_url);
        let admin = clients.admin.as_ref().expect("admin");
        let outcome = admin.remove_from_directory(&org, &account).await;
        match expected {
            Some(gone) => assert_eq!(outcome.expect("documented 404"), gone),
            None => assert!(
                matches!(outcome, Err(AtlassianError::NotFound { .. })),
                "a route's 404 is a failure: {outcome:?}"
            ),
        }
        let deletes: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path)
            .collect();
        assert_eq!(
            deletes,
            [format!(
                "/admin/v2/orgs/{}/directories/d1/users/{account}",
                super::fake::ORG_ID
            )]
        );
    }
}

/// A removal whose answer was lost, retried, and answered "not a member": the first attempt
/// may have removed the member, so the answer proves nothing about the state before the
/// call and the removal counts as made. Only a first answer, or one after attempts that
/// certainly did nothing (refused connections, 429), says the user was not a member.
#[tokio::test(start_paused = true)]
async fn not_a_member_after_a_lost_answer_proves_nothing() {
    let not_member = || {
        Ok(reply(
            400,
            &[],
            r#"{"errorMessages":["User is not a member of the group."],"errors":{}}"#,
        ))
    };
    let cases: Vec<(Vec<Outcome>, MembershipOutcome)> = vec![
        (vec![not_member()], MembershipOutcome::AlreadyInPlace),
        (
            vec![Err(TransportError::Dropped("eof".into())), not_member()],
            MembershipOutcome::Changed,
        ),
        (
            vec![Err(TransportError::Timeout), not_member()],
            MembershipOutcome::Changed,
        ),
        (
            vec![Ok(reply(502, &[], "bad gateway")), not_member()],
            MembershipOutcome::Changed,
        ),
        (
            vec![Err(TransportError::Connect("refused".into())), not_member()],
            MembershipOutcome::AlreadyInPlace,
        ),
        (
            vec![Ok(reply(429, &[("retry-after", "1")], "")), not_member()],
            MembershipOutcome::AlreadyInPlace,
        ),
    ];
    for (replies, expected) in cases {
        let sent = replies.len();
        let (transport, clients) = scripted(replies);
        let outcome = clients
            .jira
            .as_ref()
            .expect("jira")
            .remove_from_group(&group(), &account())
            .await
            .expect("settled");
        assert_eq!(outcome, expected);
        assert_eq!(transport.sent.lock().expect("lock").len(), sent);
    }
}
