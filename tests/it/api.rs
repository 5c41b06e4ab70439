//! The admin JSON API: every route in the OpenAPI document the service serves refuses a
//! missing or wrong token; approve and deny through the API restore (in the simulator) and
//! are audited with the token's name; every response the tests read validates against the
//! document's schema.

use std::time::Duration;

use reseat::config::Config;
use reseat::ledger::JournalEntry;
use reseat::sim::model::Product;
use reseat::sim::seed;
use reseat::sim::{SimConfig, SimHandle};
use reseat::web::config::{Action, ApiToken, Role, hash_token};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, spawn_app_with, spawn_configured};

const TOKEN: &str = "test-api-token-0123456789";

fn with_token(config: &mut Config) {
    config.admin.api_tokens = vec![ApiToken {
        name: "ci".into(),
        token_sha256: hash_token(TOKEN),
        role: None,
        sites: Vec::new(),
        products: Vec::new(),
    }];
    for role in [Role::Viewer, Role::Approver, Role::Operator, Role::Owner] {
        config.admin.api_tokens.push(ApiToken {
            name: role.as_str().into(),
            token_sha256: hash_token(&role_token(role)),
            role: Some(role),
            sites: Vec::new(),
            products: Vec::new(),
        });
    }
    // An approver for JSM only (spelled as an admin might), on the one site.
    config.admin.api_tokens.push(ApiToken {
        name: "jsm-approver".into(),
        token_sha256: hash_token(JSM_TOKEN),
        role: Some(Role::Approver),
        sites: vec![config.site().to_string()],
        products: vec!["jira-servicedesk".into()],
    });
}

/// The token of the approver scoped to JSM.
const JSM_TOKEN: &str = "test-jsm-approver-token";

/// The token of the `role` test token.
fn role_token(role: Role) -> String {
    format!("test-role-token-{}", role.as_str())
}

/// The document the service serves, and a checker of responses against it.
struct Contract {
    doc: Value,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Contract {
        let response = app
            .client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "openapi.json needs no token");
        let doc: Value = response.json().await.unwrap();
        Contract { doc }
    }

    /// Every (method, path template, secured) in the document.
    fn operations(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                out.push((method.clone(), path.clone(), secured));
            }
        }
        out
    }

    /// Checks a response against the schema the document gives for it: the status must be
    /// documented, and a JSON body must validate.
    fn check(&self, method: &str, template: &str, status: u16, body: &Value) {
        let operation = &self.doc["paths"][template][method];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let mut response = operation["responses"][status.to_string()].clone();
        assert!(
            response.is_object(),
            "{method} {template}: status {status} is not documented"
        );
        if let Some(reference) = response["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap();
            response = self.doc["components"]["responses"][name].clone();
        }
        let schema = response["content"]["application/json"]["schema"].clone();
        assert!(
            schema.is_object(),
            "{method} {template} {status}: no JSON schema"
        );
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap();
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {errors:?}\n{body:#}"
        );
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}

fn concrete(template: &str) -> String {
    template
        .replace("{id}", "0190e5a0-0000-7000-8000-000000000000")
        .replace("{account_id}", "5b10ac8d82e05b22cc7d4ef5")
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_wrong_token_and_the_document_is_public() {
    let app = spawn_app_with(TestDb::sqlite(), with_token, axum::Router::new()).await;
    let contract = Contract::fetch(&app).await;
    assert!(
        contract.doc["openapi"].as_str().unwrap().starts_with("3."),
        "an OpenAPI 3 document"
    );
    assert!(contract.doc["info"]["title"].is_string());
    assert!(contract.doc["info"]["version"].is_string());
    assert_eq!(
        contract.doc["components"]["securitySchemes"]["bearer"],
        json!({ "type": "http", "scheme": "bearer", "description": contract.doc["components"]["securitySchemes"]["bearer"]["description"] })
    );
    // Every reference points at something in the document.
    let mut references = Vec::new();
    collect_refs(&contract.doc, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(
            contract.doc.pointer(pointer).is_some(),
            "dangling {reference}"
        );
    }
    let operations = contract.operations();
    assert!(operations.len() >= 12, "{operations:?}");
    for (method, template, secured) in &operations {
        assert!(secured, "{method} {template} must require a token");
        let url = app.url(&concrete(template));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        for authorization in [
            None,
            Some("Bearer wrong-token".to_string()),
            Some(format!("Basic {TOKEN}")),
            Some(format!("Bearer {TOKEN}x")),
        ] {
            let mut request = app.client.request(method.clone(), &url);
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                401,
                "{method} {template} with {authorization:?}"
            );
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert_eq!(
                response.headers()["cache-control"],
                "no-store",
                "{method} {template}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            contract.check(&method.as_str().to_lowercase(), template, 401, &body);
        }
    }
    // The right token opens it.
    let response = app
        .client
        .get(app.url("/api/v1/stats"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "an answer with admin data is never cached"
    );
}

#[tokio::test]
async fn without_configured_tokens_the_api_is_closed() {
    let app = spawn_app_with(TestDb::sqlite(), |_| {}, axum::Router::new()).await;
    let response = app
        .client
        .get(app.url("/api/v1/stats"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

struct Env {
    sim: SimHandle,
    app: TestApp,
    contract: Contract,
    _dir: tempfile::TempDir,
}

async fn env(db: TestDb) -> Env {
    let sim = reseat::sim::spawn(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = reseat::demo::config_for(&sim, dir.path());
    config.queue.workers = 0;
    config.atlassian.retry.base_delay = Duration::from_millis(5);
    config.atlassian.retry.max_delay = Duration::from_millis(50);
    with_token(&mut config);
    let app = spawn_configured(db, config, axum::Router::new()).await;
    let contract = Contract::fetch(&app).await;
    Env {
        sim,
        app,
        contract,
        _dir: dir,
    }
}

impl Env {
    /// Calls the API with the token and checks the answer against the document.
    async fn call(
        &self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method_upper = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = self
            .app
            .client
            .request(method_upper, self.app.url(path))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        self.contract.check(method, template, status, &body);
        (status, body)
    }

    async fn get(&self, template: &str, path: &str) -> (u16, Value) {
        self.call("get", template, path, None).await
    }

    fn group_ids(&self, account: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sim
            .state()
            .user(account)
            .unwrap()
            .groups
            .into_iter()
            .map(|g| g.id)
            .collect();
        ids.sort();
        ids
    }

    /// Active contractors (the demo rules send their requests to an admin).
    fn contractors(&self) -> Vec<String> {
        self.sim
            .state()
            .ground_truth()
            .users
            .iter()
            .filter(|u| {
                u.groups.iter().any(|g| g == seed::GROUP_JIRA_CONTRACTORS)
                    && u.account_status == reseat::sim::AccountStatus::Active
                    && !u.suspended
                    && !u.offboarded
                    && u.account_type == reseat::sim::AccountType::Atlassian
            })
            .map(|u| u.account_id.clone())
            .collect()
    }

    /// What a sweep does: journal the user's Jira Software access groups, then remove them.
    async fn remove_like_a_sweep(&self, account: &str) {
        let user = self.sim.state().user(account).unwrap();
        let mut conn = self.app.state.db.pool().acquire().await.unwrap();
        for group in user.groups.iter().filter(|g| {
            self.sim
                .state()
                .group(&g.id)
                .is_some_and(|group| group.grants.contains(&Product::JiraSoftware))
        }) {
            reseat::ledger::journal::journal_removed_in(
                &mut conn,
                self.app.state.db.now_ms(),
                &JournalEntry {
                    account_id: account,
                    product: "jira-software",
                    site: self.app.state.site(),
                    group_id: &group.id,
                    group_name: &group.name,
                    run_id: Some("test-sweep"),
                    request_id: None,
                    reason: "inactive for 120 days",
                },
            )
            .await
            .unwrap();
            self.sim.state().remove_member(&group.id, account).unwrap();
        }
    }

    /// A request through the Automation channel, processed: the rules leave it pending.
    async fn pending_request(&self, account: &str) -> String {
        self.pending_request_for(account, "jira-software").await
    }

    /// What a sweep does to the user's JSM access: journal the JSM group, then remove it.
    async fn remove_jsm_like_a_sweep(&self, account: &str) -> String {
        let group = self.sim.state().group(seed::GROUP_JSM).unwrap();
        let mut conn = self.app.state.db.pool().acquire().await.unwrap();
        reseat::ledger::journal::journal_removed_in(
            &mut conn,
            self.app.state.db.now_ms(),
            &JournalEntry {
                account_id: account,
                product: "jira-service-desk",
                site: self.app.state.site(),
                group_id: &group.id,
                group_name: &group.name,
                run_id: Some("test-sweep"),
                request_id: None,
                reason: "inactive for 120 days",
            },
        )
        .await
        .unwrap();
        let _ = self.sim.state().remove_member(&group.id, account);
        group.id
    }

    /// The same for `product`.
    async fn pending_request_for(&self, account: &str, product: &str) -> String {
        let response = self
            .app
            .client
            .post(self.app.url("/hooks/automation"))
            .header("X-Reseat-Token", reseat::demo::DEMO_AUTOMATION_SECRET)
            .json(&json!({ "accountId": account, "product": product }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        let id = body["requestId"].as_str().unwrap().to_string();
        self.app.drain_queue().await;
        id
    }
}

#[tokio::test]
async fn approve_and_deny_through_the_api_restore_and_are_audited_with_the_token_name() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db).await;
        let contractors = env.contractors();
        assert!(contractors.len() >= 2, "the seed has contractors");
        let (account, other) = (&contractors[0], &contractors[1]);
        let before = env.group_ids(account);
        env.remove_like_a_sweep(account).await;
        assert_ne!(env.group_ids(account), before);
        let id = env.pending_request(account).await;

        let (status, page) = env
            .get("/api/v1/requests", "/api/v1/requests?status=pending")
            .await;
        assert_eq!(status, 200, "{backend}");
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id),
            "{backend}: {page}"
        );

        let (status, approved) = env
            .call(
                "post",
                "/api/v1/requests/{id}/approve",
                &format!("/api/v1/requests/{id}/approve"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 202, "{backend}: {approved}");
        assert_eq!(approved["status"], "approved");
        env.app.drain_queue().await;
        let (_, request) = env
            .get("/api/v1/requests/{id}", &format!("/api/v1/requests/{id}"))
            .await;
        assert_eq!(request["status"], "restored", "{backend}: {request}");
        assert_eq!(env.group_ids(account), before, "{backend}: groups are back");

        // Approving a decided request again is a conflict.
        let (status, body) = env
            .call(
                "post",
                "/api/v1/requests/{id}/approve",
                &format!("/api/v1/requests/{id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, 409, "{backend}: {body}");
        assert_eq!(body["error"]["code"], "conflict");

        // Deny: a reason is required; then the request is denied with it.
        env.remove_like_a_sweep(other).await;
        let denied_id = env.pending_request(other).await;
        let deny = format!("/api/v1/requests/{denied_id}/deny");
        for bad in [json!({}), json!({ "reason": "  " })] {
            let (status, body) = env
                .call("post", "/api/v1/requests/{id}/deny", &deny, Some(bad))
                .await;
            assert_eq!(status, 400, "{backend}: {body}");
        }
        let (status, denied) = env
            .call(
                "post",
                "/api/v1/requests/{id}/deny",
                &deny,
                Some(json!({ "reason": "Your contract ended in October." })),
            )
            .await;
        assert_eq!(status, 202, "{backend}: {denied}");
        assert_eq!(denied["status"], "denied");
        assert_eq!(denied["message"], "Your contract ended in October.");
        let (status, _) = env
            .call(
                "post",
                "/api/v1/requests/{id}/deny",
                "/api/v1/requests/no-such-request/deny",
                Some(json!({ "reason": "no" })),
            )
            .await;
        assert_eq!(status, 404);

        // Both decisions are audited with the token's name.
        let (status, audit) = env
            .get("/api/v1/audit", "/api/v1/audit?actor=api:ci&limit=10")
            .await;
        assert_eq!(status, 200);
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["restore.denied", "restore.approved"],
            "{backend}: newest first"
        );
        let response = env
            .app
            .client
            .get(env.app.url("/api/v1/audit.csv?actor=api:ci"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "id,at,actor,action,account_id,product,details,role"
        );
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[2].contains("api:ci,restore.approved"), "{csv}");
        assert!(
            lines[2].ends_with(",owner"),
            "a token without a role acts as owner: {csv}"
        );

        // The account's timeline: the removal, the request, the restore, in time order.
        let (status, timeline) = env
            .get(
                "/api/v1/users/{account_id}/timeline",
                &format!("/api/v1/users/{account}/timeline"),
            )
            .await;
        assert_eq!(status, 200);
        let events = timeline["events"].as_array().unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"journal"), "{kinds:?}");
        assert!(kinds.contains(&"request") && kinds.contains(&"audit"));
        assert!(events.iter().any(|e| e["journal"]["action"] == "restored"));
        let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort_by_key(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
        assert_eq!(times, sorted);

        let (status, stats) = env.get("/api/v1/stats", "/api/v1/stats").await;
        assert_eq!(status, 200);
        assert_eq!(stats["requests_by_status"]["restored"], 1);
        assert_eq!(stats["requests_by_status"]["denied"], 1);
        assert!(
            stats["journal"]["jira-software"]["restored"]
                .as_i64()
                .unwrap()
                >= 1
        );

        // The rule tester names the rule that sends contractors to an admin.
        let (status, explained) = env
            .get(
                "/api/v1/rules/explain",
                &format!(
                    "/api/v1/rules/explain?account={account}&product=jira-software&channel=jsm"
                ),
            )
            .await;
        assert_eq!(status, 200, "{explained}");
        assert_eq!(explained["decision"], "manual", "{explained}");
        assert_eq!(explained["rule"], "contractors need approval");
        let (status, _) = env
            .get(
                "/api/v1/rules/explain",
                "/api/v1/rules/explain?account=x&product=jira-software&channel=carrier-pigeon",
            )
            .await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn plans_and_their_items_page_with_a_cursor() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db).await;
        let db = &env.app.state.db;
        let items: Vec<reseat::sweep::store::NewItem> = (0..5)
            .map(|n| reseat::sweep::store::NewItem {
                account_id: format!("acc-{n}"),
                product: if n % 2 == 0 {
                    "jira-software"
                } else {
                    "confluence"
                }
                .into(),
                email: Some(format!("u{n}@acme.example")),
                display_name: None,
                decision: if n < 3 { "remove" } else { "keep" }.into(),
                reason: "test".into(),
                last_active: Some(1_700_000_000_000),
                threshold_days: Some(90),
                access_groups: r#"[{"id":"g1","name":"jira-users"}]"#.into(),
                added_to_org: None,
                billing: "{}".into(),
            })
            .collect();
        let mut plan_ids = Vec::new();
        for _ in 0..3 {
            let id = uuid::Uuid::now_v7().to_string();
            let mut tx = db.pool().begin().await.unwrap();
            reseat::sweep::store::create_plan_in(
                &mut tx,
                db.now_ms(),
                &id,
                "api",
                "acme",
                &json!({"n": 1}),
            )
            .await
            .unwrap();
            reseat::sweep::store::insert_items_in(&mut tx, &id, &items)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            plan_ids.push(id);
            env.app.advance(Duration::from_millis(3));
        }
        // Newest first, two per page, then the last one.
        let (status, first) = env.get("/api/v1/plans", "/api/v1/plans?limit=2").await;
        assert_eq!(status, 200, "{backend}");
        let ids: Vec<&str> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [plan_ids[2].as_str(), plan_ids[1].as_str()],
            "{backend}"
        );
        let cursor = first["next_cursor"].as_str().unwrap();
        let (_, second) = env
            .get(
                "/api/v1/plans",
                &format!("/api/v1/plans?limit=2&cursor={cursor}"),
            )
            .await;
        assert_eq!(second["items"][0]["id"], plan_ids[0].as_str());
        assert!(second["next_cursor"].is_null());

        let plan = &plan_ids[0];
        let (status, got) = env
            .get("/api/v1/plans/{id}", &format!("/api/v1/plans/{plan}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(got["summary"]["n"], 1);
        let (status, _) = env
            .get("/api/v1/plans/{id}", "/api/v1/plans/no-such-plan")
            .await;
        assert_eq!(status, 404);

        let template = "/api/v1/plans/{id}/items";
        let (_, removes) = env
            .get(
                template,
                &format!("/api/v1/plans/{plan}/items?decision=remove&product=jira-software"),
            )
            .await;
        let accounts: Vec<&str> = removes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["account_id"].as_str().unwrap())
            .collect();
        assert_eq!(accounts, ["acc-0", "acc-2"], "{backend}");
        let mut seen = Vec::new();
        let mut path = format!("/api/v1/plans/{plan}/items?limit=2");
        loop {
            let (status, page) = env.get(template, &path).await;
            assert_eq!(status, 200);
            for item in page["items"].as_array().unwrap() {
                seen.push(item["account_id"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/api/v1/plans/{plan}/items?limit=2&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(seen, ["acc-0", "acc-1", "acc-2", "acc-3", "acc-4"]);
        for bad in ["limit=0", "limit=501", "cursor=abc", "decision=maybe"] {
            let (status, body) = env
                .get(template, &format!("/api/v1/plans/{plan}/items?{bad}"))
                .await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
    }
}

#[tokio::test]
async fn an_approval_naming_a_group_outside_the_products_access_groups_is_refused() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db).await;
        let account = env.contractors()[0].clone();
        env.remove_like_a_sweep(&account).await;
        let removed = env.group_ids(&account);
        let id = env.pending_request(&account).await;
        let approve = format!("/api/v1/requests/{id}/approve");
        let group_id = |name: &str| env.sim.state().group(name).unwrap().id;
        let approvals = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved'",
            )
            .fetch_one(env.app.state.db.pool())
            .await
            .unwrap()
        };

        // Admin groups do not grant Jira Software: refused, on the API and the CLI, with
        // a clear error; nothing changes.
        for name in [seed::GROUP_ORG_ADMINS, seed::GROUP_JIRA_ADMINS] {
            let (status, body) = env
                .call(
                    "post",
                    "/api/v1/requests/{id}/approve",
                    &approve,
                    Some(json!({ "groups": [group_id(name)] })),
                )
                .await;
            assert_eq!(status, 422, "{backend}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&group_id(name)) && message.contains("access groups"),
                "{backend}: {message}"
            );
            let refused = reseat::restore::cli::requests(
                &env.app.state,
                &reseat::restore::cli::RequestsArgs {
                    command: reseat::restore::cli::RequestsCommand::Approve {
                        id: id.clone(),
                        groups: vec![group_id(name)],
                        as_admin: None,
                    },
                },
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(refused.contains("not among the access groups"), "{refused}");
        }
        env.app.drain_queue().await;
        assert_eq!(
            reseat::restore::store::get(&env.app.state.db, &id)
                .await
                .unwrap()
                .unwrap()
                .status,
            "pending",
            "{backend}"
        );
        assert_eq!(approvals().await, 0, "{backend}");
        assert_eq!(env.group_ids(&account), removed, "{backend}: nothing added");

        // The product's own access group is fine.
        let (status, body) = env
            .call(
                "post",
                "/api/v1/requests/{id}/approve",
                &approve,
                Some(json!({ "groups": [group_id(seed::GROUP_JIRA_SOFTWARE)] })),
            )
            .await;
        assert_eq!(status, 202, "{backend}: {body}");
        env.app.drain_queue().await;
        assert_eq!(
            reseat::restore::store::get(&env.app.state.db, &id)
                .await
                .unwrap()
                .unwrap()
                .status,
            "restored",
            "{backend}"
        );
        assert!(
            env.group_ids(&account)
                .contains(&group_id(seed::GROUP_JIRA_SOFTWARE))
        );
        assert!(
            !env.group_ids(&account)
                .contains(&group_id(seed::GROUP_ORG_ADMINS))
        );
    }
}

#[tokio::test]
async fn nul_bytes_and_broken_utf8_in_the_address_get_400_on_every_backend() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let app = spawn_app_with(db, with_token, axum::Router::new()).await;
        for path in [
            "/api/v1/plans/%00",
            "/api/v1/plans/abc%00def",
            "/api/v1/requests?status=%00",
            "/api/v1/plans/%FF%FE",
        ] {
            let response = app
                .client
                .get(app.url(path))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{backend}: {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_request", "{backend}: {path}");
        }
        for path in ["/admin/users?q=%00", "/restore/%00", "/admin/users?q=a+%00"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 400, "{backend}: {path}");
        }
        // The same addresses without the NUL still reach their handlers.
        let response = app
            .client
            .get(app.url("/api/v1/plans/abcdef"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{backend}");
        app.stop().await.unwrap();
    }
}

/// Every route of the document, for every role: allowed (the handler answers, not 401 or
/// 403) or 403 with a `forbidden` JSON body the document describes; a refused approve leaves
/// the request pending and is counted in the refusal audit. `/api/v1/me` names the role.
#[tokio::test]
async fn every_route_for_every_role_is_allowed_or_403_and_a_refusal_changes_nothing() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db).await;
        let operations = env.contract.operations();
        for role in [Role::Viewer, Role::Approver, Role::Operator, Role::Owner] {
            for (method, template, _) in &operations {
                let action = Action::of_route(
                    &axum::http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    template,
                );
                let response = env
                    .app
                    .client
                    .request(
                        reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                        env.app.url(&concrete(template)),
                    )
                    .bearer_auth(role_token(role))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if role.allows(action) {
                    assert!(
                        status != 401 && status != 403,
                        "{backend}: {} may {method} {template}: {status} {body}",
                        role.as_str()
                    );
                } else {
                    assert_eq!(
                        status,
                        403,
                        "{backend}: {} {method} {template}",
                        role.as_str()
                    );
                    assert_eq!(body["error"]["code"], "forbidden", "{body}");
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains(role.as_str()),
                        "{body}"
                    );
                    env.contract.check(method, template, 403, &body);
                }
            }
        }

        // A viewer's approve changes nothing; an approver's goes through.
        let contractors = env.contractors();
        let account = &contractors[0];
        env.remove_like_a_sweep(account).await;
        let id = env.pending_request(account).await;
        let approve = env.app.url(&format!("/api/v1/requests/{id}/approve"));
        let refused = env
            .app
            .client
            .post(&approve)
            .bearer_auth(role_token(Role::Viewer))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{backend}");
        let (_, request) = env
            .get("/api/v1/requests/{id}", &format!("/api/v1/requests/{id}"))
            .await;
        assert_eq!(request["status"], "pending", "{backend}: {request}");
        let refusals = reseat::audit::refusals_since(&env.app.state.db, 0, 100)
            .await
            .unwrap();
        assert!(
            refusals
                .iter()
                .any(|r| r.action == "role.refused" && r.source == "api:viewer"),
            "{backend}: {refusals:?}"
        );
        let allowed = env
            .app
            .client
            .post(&approve)
            .bearer_auth(role_token(Role::Approver))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 202, "{backend}");

        // /me says what each token may do.
        let me: Value = env
            .app
            .client
            .get(env.app.url("/api/v1/me"))
            .bearer_auth(role_token(Role::Approver))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["actor"], "api:approver");
        assert_eq!(me["role"], "approver");
        assert_eq!(me["actions"], json!(["read", "decide"]));
        let (status, me) = env.get("/api/v1/me", "/api/v1/me").await;
        assert_eq!(status, 200);
        assert_eq!(me["role"], "owner", "a token without a role is owner");

        // The owner sees the configuration, redacted, and which keys are set.
        let response = env
            .app
            .client
            .get(env.app.url("/api/v1/config"))
            .bearer_auth(role_token(Role::Owner))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{backend}");
        let config: Value = response.json().await.unwrap();
        env.contract.check("get", "/api/v1/config", 200, &config);
        assert_eq!(
            config["keys"]["link_keys"],
            json!([{ "id": "demo", "active": true }]),
            "{backend}: {config}"
        );
        assert_eq!(config["keys"]["webhook_secrets"], 1);
        assert_eq!(config["keys"]["jsm_secret"], true);
        let effective = config["effective"].as_str().unwrap();
        assert!(effective.contains("[redacted]"), "{effective}");
        for secret in [
            reseat::demo::DEMO_AUTOMATION_SECRET,
            reseat::demo::DEMO_JSM_SECRET,
        ] {
            assert!(!effective.contains(secret), "{backend}: a secret is shown");
            assert!(!config.to_string().contains(secret));
        }
        let link_key = env.app.state.config.links.keys["demo"].expose().to_string();
        assert!(!config.to_string().contains(&link_key), "{backend}");
    }
}

/// An approver scoped to JSM lists only JSM requests and audit entries, approves a JSM
/// request (audited with its role), and is refused (403, audited, nothing changed in the
/// simulator or the database) on a Jira Software request, even by id.
#[tokio::test]
async fn a_product_scoped_approver_sees_and_decides_only_its_products() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let env = env(db).await;
        let contractors = env.contractors();
        let (jira_account, jsm_account) = (&contractors[0], &contractors[1]);
        env.remove_like_a_sweep(jira_account).await;
        let jira = env.pending_request(jira_account).await;
        let jsm_group = env.remove_jsm_like_a_sweep(jsm_account).await;
        let jsm = env
            .pending_request_for(jsm_account, "jira-servicedesk")
            .await;
        let jira_groups = env.group_ids(jira_account);
        let scoped = |method: reqwest::Method, path: &str| {
            env.app
                .client
                .request(method, env.app.url(path))
                .bearer_auth(JSM_TOKEN)
        };

        // The list holds the JSM request only; the unscoped token sees both.
        let response = scoped(reqwest::Method::GET, "/api/v1/requests?status=pending")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{backend}");
        let page: Value = response.json().await.unwrap();
        env.contract.check("get", "/api/v1/requests", 200, &page);
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![jsm.as_str()], "{backend}: {page}");
        assert_eq!(page["items"][0]["site"], env.app.state.site(), "{backend}");
        let (_, all) = env
            .get("/api/v1/requests", "/api/v1/requests?status=pending")
            .await;
        assert_eq!(
            all["items"].as_array().unwrap().len(),
            2,
            "{backend}: {all}"
        );

        // The Jira request is out of scope: reading or approving it is 403, and nothing
        // changes.
        let response = scoped(reqwest::Method::GET, &format!("/api/v1/requests/{jira}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{backend}");
        let response = scoped(
            reqwest::Method::POST,
            &format!("/api/v1/requests/{jira}/approve"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 403, "{backend}");
        let body: Value = response.json().await.unwrap();
        env.contract
            .check("post", "/api/v1/requests/{id}/approve", 403, &body);
        assert_eq!(body["error"]["code"], "forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("outside the scope of api:jsm-approver")
                && message.contains("products: jira-service-desk")
                && message.contains("nothing was changed"),
            "{backend}: {message}"
        );
        env.app.drain_queue().await;
        let stored = reseat::restore::store::get(&env.app.state.db, &jira)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "pending", "{backend}");
        assert_eq!(env.group_ids(jira_account), jira_groups, "{backend}");
        let approvals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved'")
                .fetch_one(env.app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(approvals, 0, "{backend}");
        let refusals = reseat::audit::refusals_since(&env.app.state.db, 0, 100)
            .await
            .unwrap();
        assert!(
            refusals.iter().any(|r| r.action == "role.refused"
                && r.source == "api:jsm-approver"
                && r.reason == "approver outside its scope"),
            "{backend}: {refusals:?}"
        );

        // The JSM request is in scope: approved, restored, audited with the role.
        let response = scoped(
            reqwest::Method::POST,
            &format!("/api/v1/requests/{jsm}/approve"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 202, "{backend}");
        env.app.drain_queue().await;
        let stored = reseat::restore::store::get(&env.app.state.db, &jsm)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, "restored", "{backend}: {stored:?}");
        assert!(
            env.group_ids(jsm_account).contains(&jsm_group),
            "{backend}: the JSM group is back"
        );
        let (actor, role): (String, Option<String>) =
            sqlx::query_as("SELECT actor, role FROM audit_log WHERE action = 'restore.approved'")
                .fetch_one(env.app.state.db.pool())
                .await
                .unwrap();
        assert_eq!(
            (actor.as_str(), role.as_deref()),
            ("api:jsm-approver", Some("approver")),
            "{backend}"
        );

        // The audit log it reads names no Jira Software entry; each entry carries a role.
        let response = scoped(reqwest::Method::GET, "/api/v1/audit?limit=500")
            .send()
            .await
            .unwrap();
        let page: Value = response.json().await.unwrap();
        env.contract.check("get", "/api/v1/audit", 200, &page);
        let items = page["items"].as_array().unwrap();
        assert!(
            items.iter().all(|e| e["product"] != "jira-software"),
            "{backend}: {page}"
        );
        assert!(
            items.iter().any(|e| e["action"] == "restore.approved"
                && e["role"] == "approver"
                && e["actor"] == "api:jsm-approver"),
            "{backend}: {page}"
        );
        let (_, everything) = env.get("/api/v1/audit", "/api/v1/audit?limit=500").await;
        assert!(
            everything["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["product"] == "jira-software"),
            "{backend}: the unscoped token sees the Jira entries"
        );
    }
}
