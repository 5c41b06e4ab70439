//! Each pagination style followed across at least three pages, against the fake server.

use super::fake::{FakeServer, ORG_ID, Reply, clients};
use reseat::atlassian::{AccountId, GroupId, IssueKey, OrgId, PageToken};
use serde_json::json;

fn account(n: usize) -> String {
    format!("5b10ac8d82e05b22cc7d{n:04}")
}

#[tokio::test]
async fn admin_users_follow_the_opaque_cursor_in_links_next() {
    // Cursors with characters that must be encoded; next links on Atlassian's own host.
    let cursors = ["", "p/2+x=", "p/3+x="];
    let server = FakeServer::start(move |request, _| {
        let cursor = request.param("cursor").unwrap_or("");
        let page = cursors.iter().position(|c| *c == cursor).expect("a cursor we gave out");
        let users: Vec<_> = (page * 3..(page * 3 + 3).min(7))
            .map(|n| json!({"account_id": account(n), "account_type": "atlassian",
                "account_status": "active", "name": format!("User {n}"), "picture": "",
                "email": format!("u{n}@acme.test"), "access_billable": true,
                "last_active": "2024-05-01T10:00:00.000Z",
                "product_access": [{"key": "confluence", "name": "Confluence",
                    "url": "https://acme.atlassian.net/wiki", "last_active": "2024-04-30T09:00:00Z"},
                    {"key": "rovo-next", "name": "Rovo Next"}]}))
            .collect();
        let next = cursors.get(page + 1).map(|c| {
            let encoded: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
            format!("https://api.atlassian.com/admin/v1/orgs/{ORG_ID}/users?cursor={encoded}")
        });
        Reply::json(200, json!({"data": users, "meta": {"total": 7},
            "links": {"self": "x", "next": next}}))
    })
    .await;
    let clients = clients(&server.base_url);
    let admin = clients.admin.as_ref().expect("admin");
    let mut pages = admin.users(&OrgId::parse(ORG_ID).expect("org"));
    let mut seen = Vec::new();
    let mut page_count = 0;
    while let Some(users) = pages.next_page().await.expect("page") {
        page_count += 1;
        seen.extend(users);
    }
    assert_eq!(page_count, 3);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[6].account_id.as_str(), account(6));
    assert_eq!(seen[0].product_access[0].key.as_str(), "confluence");
    assert!(
        !seen[0].product_access[1].key.is_known(),
        "unknown product keys are kept"
    );
    let sent: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.param("cursor").map(str::to_owned))
        .collect();
    assert_eq!(sent, [None, Some("p/2+x=".into()), Some("p/3+x=".into())]);
}

#[tokio::test]
async fn jira_group_members_page_by_start_at_until_is_last() {
    let server = FakeServer::start(|request, _| {
        let start: usize = request.param("startAt").expect("startAt").parse().expect("number");
        let end = (start + 3).min(8);
        let values: Vec<_> = (start..end)
            .map(|n| json!({"accountId": account(n), "accountType": "atlassian", "active": true, "displayName": "x"}))
            .collect();
        Reply::json(200, json!({"startAt": start, "maxResults": 3, "total": 8, "isLast": end == 8, "values": values}))
    })
    .await;
    let clients = clients(&server.base_url);
    let jira = clients.jira.as_ref().expect("jira");
    let group = GroupId::parse("3571b9a7-348f-414a-9087-8e1ea03a7df8").expect("group");
    let members = jira
        .group_members(&group, false)
        .collect_all()
        .await
        .expect("members");
    assert_eq!(members.len(), 8);
    let starts: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.param("startAt").map(str::to_owned))
        .collect();
    assert_eq!(
        starts,
        [Some("0".into()), Some("3".into()), Some("6".into())]
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.param("groupId") == Some(group.as_str()))
    );
}

#[tokio::test]
async fn jira_user_search_pages_a_bare_array_until_a_short_page() {
    let server = FakeServer::start(|request, _| {
        let start: usize = request
            .param("startAt")
            .expect("startAt")
            .parse()
            .expect("number");
        let size: usize = request
            .param("maxResults")
            .expect("maxResults")
            .parse()
            .expect("number");
        let values: Vec<_> = (start..(start + size).min(120))
            .map(|n| json!({"accountId": account(n), "accountType": "app"}))
            .collect();
        Reply::json(200, json!(values))
    })
    .await;
    let clients = clients(&server.base_url);
    let jira = clients.jira.as_ref().expect("jira");
    let mut count = 0;
    jira.search_users("a")
        .for_each_page(|users| {
            count += users.len();
            Ok::<_, reseat::atlassian::AtlassianError>(())
        })
        .await
        .expect("search");
    assert_eq!(count, 120);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn confluence_members_follow_links_next() {
    let server = FakeServer::start(|request, _| {
        let start: usize = request.param("start").expect("start").parse().expect("number");
        let end = (start + 3).min(8);
        let results: Vec<_> = (start..end).map(|n| json!({"type": "known", "accountId": account(n)})).collect();
        let mut links = json!({"base": "https://acme.atlassian.net/wiki", "context": "/wiki"});
        if end < 8 {
            links["next"] = json!(format!("/rest/api/group/g/membersByGroupId?start={end}&limit=3"));
        }
        Reply::json(200, json!({"results": results, "start": start, "limit": 3, "size": end - start, "_links": links}))
    })
    .await;
    let clients = clients(&server.base_url);
    let confluence = clients.confluence.as_ref().expect("confluence");
    let group = GroupId::parse("3571b9a7-348f-414a-9087-8e1ea03a7df8").expect("group");
    let first = confluence
        .group_members_page(&group, None)
        .await
        .expect("page");
    assert_eq!(first.next, Some(PageToken::Offset(3)));
    let members = confluence
        .group_members(&group)
        .collect_all()
        .await
        .expect("members");
    assert_eq!(members.len(), 8);
    let starts: Vec<_> = server
        .requests()
        .iter()
        .skip(1)
        .map(|r| r.param("start").map(str::to_owned))
        .collect();
    assert_eq!(
        starts,
        [Some("0".into()), Some("3".into()), Some("6".into())]
    );
}

#[tokio::test]
async fn jsm_transitions_page_until_is_last_page_and_resolve_by_name() {
    let names = ["Start progress", "Resolve", "Decline"];
    let server = FakeServer::start(move |request, _| {
        if request.method == "POST" {
            return Reply::raw(204, "");
        }
        let start: usize = request
            .param("start")
            .expect("start")
            .parse()
            .expect("number");
        Reply::json(
            200,
            json!({"start": start, "limit": 1, "size": 1, "isLastPage": start == 2,
            "values": [{"id": format!("7{start}"), "name": names[start]}], "_links": {}}),
        )
    })
    .await;
    let clients = clients(&server.base_url);
    let jsm = clients.jsm.as_ref().expect("jsm");
    let issue = IssueKey::parse("HELP-7").expect("issue");
    let chosen = jsm
        .transition_by_name(&issue, " decline ", None)
        .await
        .expect("transition");
    assert_eq!(chosen.id, "72");
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "three pages then the POST");
    assert_eq!(requests[3].body, Some(json!({"id": "72"})));
    let unknown = jsm
        .transition_by_name(&issue, "Reopen", None)
        .await
        .expect_err("no such name");
    assert!(unknown.to_string().contains("Decline"), "{unknown}");
    let _ = AccountId::parse(account(1)).expect("ids used above are valid");
}
