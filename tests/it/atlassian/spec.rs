//! Every request the client makes, checked against the official OpenAPI documents: method and
//! path template exist, every query parameter is declared (and every required one sent), every
//! body field exists in the request schema. Operations the official specs lack are listed in
//! `docs/atlassian-endpoints.md`; exactly those are checked against the fragment transcribed
//! from the generated admin client (`crates/sim/specs/admin-v2-directory.transcribed.json`),
//! or skipped where it lacks them.

use super::fake::{FakeServer, Recorded, Reply, clients};
use reseat::atlassian::{AccountId, GroupId, IssueKey, OrgId, ProductKey};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/sim/specs/");
const ENDPOINTS_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/atlassian-endpoints.md");

struct Spec {
    /// The prefix our paths carry that the document's paths do not (its server URL).
    strip: &'static str,
    /// Our paths under this prefix belong to this document.
    owns: &'static str,
    doc: Value,
    /// Transcribed from the generated client, not an Atlassian document (see the specs'
    /// README); it checks operations the official documents lack.
    transcribed: bool,
}

fn load(file: &str) -> Value {
    let path = format!("{SPECS}{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {path}: {e} (the vendored specs live in crates/sim/specs)")
    });
    serde_json::from_str(&text).expect("spec is JSON")
}

fn specs() -> Vec<Spec> {
    vec![
        // The v2 directory calls and last-active-dates: no official document has them; the
        // fragment transcribed from the generated client does.
        Spec {
            strip: "/admin",
            owns: "/admin/",
            doc: load("admin-v2-directory.transcribed.json"),
            transcribed: true,
        },
        Spec {
            strip: "/admin/v1",
            owns: "/admin/v1/",
            doc: load("admin-organizations.schema-original.json"),
            transcribed: false,
        },
        Spec {
            strip: "",
            owns: "/rest/api/3/",
            doc: load("jira-platform-v3.swagger-v3.v3.json"),
            transcribed: false,
        },
        Spec {
            strip: "",
            owns: "/wiki/rest/api/",
            doc: load("confluence-v1.schema-original.json"),
            transcribed: false,
        },
        Spec {
            strip: "",
            owns: "/rest/servicedeskapi/",
            doc: load("jira-service-management.schema-original.json"),
            transcribed: false,
        },
    ]
}

/// The best-matching template (most literal segments) for a concrete path.
fn match_template<'a>(templates: impl Iterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    templates
        .filter_map(|template| {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    continue;
                }
                if part != segment {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => value,
    }
}

/// Properties and required names of a schema, through `$ref` and `allOf`.
fn properties(doc: &Value, schema: &Value) -> (serde_json::Map<String, Value>, Vec<String>) {
    let schema = resolve(doc, schema);
    let mut props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (more, more_required) = properties(doc, part);
        props.extend(more);
        required.extend(more_required);
    }
    (props, required)
}

fn check_body(doc: &Value, schema: &Value, body: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(object) = body.as_object() else {
        return;
    };
    let (props, required) = properties(doc, schema);
    for name in &required {
        if !object.contains_key(name) {
            problems.push(format!("body {at}: required field `{name}` missing"));
        }
    }
    for (name, value) in object {
        match props.get(name) {
            Some(field) => check_body(doc, field, value, &format!("{at}.{name}"), problems),
            None => problems.push(format!(
                "body {at}: field `{name}` is not in the schema (has {:?})",
                props.keys().collect::<Vec<_>>()
            )),
        }
    }
}

/// How a conforming request was checked; keys are `METHOD /our/path/template`.
enum Checked {
    /// Against an official document.
    Official,
    /// Against the transcribed fragment (an operation no official document has).
    Transcribed(String),
    /// Not at all: no document has the operation.
    Absent(String),
}

/// Checks one request against its spec operation; `Err` on a mismatch.
fn conform(
    specs: &[Spec],
    documented: &[(String, String)],
    request: &Recorded,
) -> Result<Checked, Vec<String>> {
    let method = request.method.to_ascii_lowercase();
    let mut owners = specs
        .iter()
        .filter(|s| request.path.starts_with(s.owns))
        .peekable();
    if owners.peek().is_none() {
        return Err(vec![format!("no spec owns {}", request.path)]);
    }
    // The first document that owns the path and has the operation checks it.
    let found = owners.find_map(|spec| {
        let path = &request.path[spec.strip.len()..];
        let paths = spec.doc["paths"].as_object().expect("paths");
        let template = match_template(paths.keys().map(String::as_str), path)?;
        Some((spec, paths, template, paths[template].get(&method)?))
    });
    let Some((spec, paths, template, operation)) = found else {
        let same_method = documented.iter().filter(|(m, _)| *m == request.method);
        let template = match_template(same_method.map(|(_, t)| t.as_str()), &request.path);
        return match template {
            Some(template) => Ok(Checked::Absent(format!("{} {template}", request.method))),
            None => Err(vec![format!(
                "{} {} is in no spec and not listed in docs/atlassian-endpoints.md",
                request.method, request.path
            )]),
        };
    };
    let doc = &spec.doc;
    let mut problems = Vec::new();
    let declared: Vec<&Value> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            paths[template]
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .map(|p| resolve(doc, p))
        .collect();
    let query: Vec<&Value> = declared
        .iter()
        .copied()
        .filter(|p| p["in"] == "query")
        .collect();
    for (name, _) in &request.query {
        if !query.iter().any(|p| p["name"] == name.as_str()) {
            problems.push(format!("query parameter `{name}` is not declared"));
        }
    }
    for parameter in &query {
        let name = parameter["name"].as_str().unwrap_or_default();
        if parameter["required"] == true && request.param(name).is_none() {
            problems.push(format!("required query parameter `{name}` not sent"));
        }
    }
    let schema = operation
        .get("requestBody")
        .map(|b| resolve(doc, b))
        .and_then(|b| b.pointer("/content/application~1json/schema"));
    match (schema, &request.body) {
        (Some(schema), Some(body)) => check_body(doc, schema, body, "", &mut problems),
        (None, Some(_)) => problems.push("a body is sent but the operation takes none".into()),
        (Some(_), None) if operation["requestBody"]["required"] == true => {
            problems.push("the operation requires a body".into());
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(if spec.transcribed {
            Checked::Transcribed(format!("{} {}{template}", request.method, spec.strip))
        } else {
            Checked::Official
        })
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{} {} ({template}): {p}", request.method, request.path))
            .collect())
    }
}

/// `(METHOD, /path/template)` rows of the "not in the stored specs" table of the endpoints doc.
fn documented_gaps() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(ENDPOINTS_DOC).expect("docs/atlassian-endpoints.md");
    let section = text
        .split("## Operations not in the stored specs")
        .nth(1)
        .expect("the doc has the section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter_map(|op| op.split_once(' '))
        .map(|(method, template)| (method.to_owned(), template.to_owned()))
        .collect()
}

fn canned(request: &Recorded, _: usize) -> Reply {
    let user = json!({"account_id": "5b10ac8d82e05b22cc7d4ef5", "account_type": "atlassian",
        "account_status": "active", "name": "Ada", "picture": "https://x.test/a.png",
        "product_access": [{"key": "jira-software", "name": "Jira", "last_active": "2024-01-02T03:04:05Z"}]});
    let jira_user = json!({"accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian",
        "active": true, "displayName": "Ada"});
    let group =
        json!({"groupId": "3571b9a7-348f-414a-9087-8e1ea03a7df8", "name": "jira-software-users"});
    let role = json!({"key": "jira-software", "name": "Jira", "groupDetails": [group], "defaultGroupsDetails": [group]});
    let cgroup = json!({"type": "group", "id": "3571b9a7-348f-414a-9087-8e1ea03a7df8", "name": "confluence-users"});
    let path = request.path.as_str();
    let body = match (request.method.as_str(), path) {
        ("GET", "/admin/v1/orgs") => {
            json!({"data": [{"id": super::fake::ORG_ID, "type": "orgs", "attributes": {"name": "Acme"}}], "links": {}})
        }
        ("GET", p) if p.ends_with("/users") && p.starts_with("/admin") => {
            json!({"data": [user], "links": {}})
        }
        ("GET", p) if p.ends_with("/last-active-dates") => {
            json!({"data": {"product_access": [{"id": "ari:cloud:jira::site/c1", "key": "jira-software", "last_active": "2024-01-02"}], "added_to_org": "2023-01-01"}, "links": {}})
        }
        ("POST", p) if p.ends_with("/users/search") => {
            json!({"data": [{"accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian",
                "accountStatus": "active", "addedToOrg": "2023-01-01T00:00:00Z", "name": "Ada",
                "productAccess": [{"key": "jira-software", "id": "ari:cloud:jira::site/c1",
                    "lastActiveTimestamp": "2024-01-02T03:04:05Z"}]}], "links": {}})
        }
        ("GET", p) if p.contains("/users/") && p.ends_with("/role-assignments") => {
            json!({"data": [{"resourceId": "ari:cloud:jira-software::site/c1",
                "resourceOwner": "jira-software", "roles": ["atlassian/user"],
                "roleAssignments": [{"role": "atlassian/user",
                    "roleAssignmentMethods": ["direct", "group_direct"]}],
                "directoryId": "d1", "userDirectoryStatus": "active"}], "links": {}})
        }
        ("GET", p) if p.ends_with("/role-assignments") => {
            json!({"data": [{"resourceId": "ari:cloud:jira-software::site/c1",
                "resourceOwner": "jira-software", "defaultRole": "atlassian/user",
                "roles": ["atlassian/user"]}], "links": {}})
        }
        ("GET", p) if p.starts_with("/admin/v2/") && p.contains("/groups/") => {
            json!({"id": "3571b9a7-348f-414a-9087-8e1ea03a7df8", "name": "jira-software-users",
                "managementAccess": {"deletable": true, "modifiable": true, "readable": true}})
        }
        ("GET", p) if p.starts_with("/admin/v2/") && p.ends_with("/directories") => {
            json!({"data": [{"directoryId": "d1", "name": "Acme"}], "links": {}})
        }
        ("POST", p) if p.starts_with("/admin") => json!({"message": "ok"}),
        ("DELETE", _) => return Reply::raw(204, ""),
        ("GET", "/rest/api/3/applicationrole") => json!([role]),
        ("GET", p) if p.starts_with("/rest/api/3/applicationrole/") => role,
        ("GET", "/rest/api/3/group/bulk") => {
            json!({"startAt": 0, "isLast": true, "values": [group]})
        }
        ("GET", "/rest/api/3/group/member") => {
            json!({"startAt": 0, "isLast": true, "values": [jira_user]})
        }
        ("GET", "/rest/api/3/user/groups") => json!([group]),
        ("GET", "/rest/api/3/user") => jira_user,
        ("GET", "/rest/api/3/user/search") => json!([jira_user]),
        ("POST", "/rest/api/3/group/user") => return Reply::json(201, group),
        ("GET", "/wiki/rest/api/group") | ("GET", "/wiki/rest/api/user/memberof") => {
            json!({"results": [cgroup], "start": 0, "limit": 200, "size": 1, "_links": {}})
        }
        ("GET", p) if p.ends_with("/membersByGroupId") => {
            json!({"results": [{"type": "known", "accountId": "5b10ac8d82e05b22cc7d4ef5"}], "start": 0, "limit": 200, "size": 1, "_links": {}})
        }
        ("POST", "/wiki/rest/api/group/userByGroupId") => return Reply::raw(201, ""),
        ("GET", p) if p.ends_with("/transition") => {
            json!({"start": 0, "limit": 50, "size": 1, "isLastPage": true, "values": [{"id": "761", "name": "Resolve"}]})
        }
        ("POST", p) if p.ends_with("/transition") => return Reply::raw(204, ""),
        ("POST", p) if p.ends_with("/comment") => {
            return Reply::json(201, json!({"id": "1", "body": "done", "public": true}));
        }
        ("GET", p) if p.starts_with("/rest/servicedeskapi/request/") => {
            json!({"issueKey": "HELP-1",
            "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5"}, "requestFieldValues": [], "currentStatus": {"status": "Open"}})
        }
        _ => {
            return Reply::json(
                404,
                json!({"errorMessages": [format!("fake has no {path}")]}),
            );
        }
    };
    Reply::json(200, body)
}

#[tokio::test]
async fn every_request_the_client_makes_conforms_to_the_specs() {
    let server = FakeServer::start(canned).await;
    let clients = clients(&server.base_url);
    let (admin, jira) = (
        clients.admin.as_ref().expect("admin"),
        clients.jira.as_ref().expect("jira"),
    );
    let (confluence, jsm) = (
        clients.confluence.as_ref().expect("confluence"),
        clients.jsm.as_ref().expect("jsm"),
    );
    let org = OrgId::parse(super::fake::ORG_ID).expect("org");
    let account = AccountId::parse("5b10ac8d82e05b22cc7d4ef5").expect("account");
    let group = GroupId::parse("3571b9a7-348f-414a-9087-8e1ea03a7df8").expect("group");
    let issue = IssueKey::parse("HELP-1").expect("issue");
    let jsw = ProductKey::JIRA_SOFTWARE;

    // Every public call of every client, once.
    admin.orgs().collect_all().await.expect("orgs");
    admin.users(&org).collect_all().await.expect("users");
    let directory = admin
        .directory_users(&org, "-")
        .collect_all()
        .await
        .expect("directory users");
    assert_eq!(directory[0].product_access[0].key.as_ref(), Some(&jsw));
    assert!(directory[0].added_to_org.is_some());
    admin
        .last_active_dates(&org, &account)
        .await
        .expect("last active");
    admin.suspend(&org, &account).await.expect("suspend");
    admin.restore(&org, &account).await.expect("restore");
    admin
        .remove_from_directory(&org, &account)
        .await
        .expect("remove");
    let resource = "ari:cloud:jira-software::site/c1";
    let holders = admin
        .role_holders_page(
            &org,
            "-",
            &[resource.to_owned()],
            &["atlassian/user".to_owned()],
            None,
        )
        .await
        .expect("role holders");
    assert_eq!(holders.items[0].account_id, account);
    let roles = admin
        .user_role_assignments(&org, "-", &account, Some(resource))
        .await
        .expect("user roles");
    assert_eq!(
        reseat::sweep::roles::billable_roles(&roles, resource).len(),
        1
    );
    admin
        .group_role_assignments(&org, "-", group.as_str(), Some(resource))
        .await
        .expect("group roles");
    assert!(
        admin
            .group_details(&org, "-", group.as_str())
            .await
            .expect("group")
            .modifiable()
    );
    admin
        .assign_role(&org, &account, "atlassian/user", resource)
        .await
        .expect("assign");
    admin
        .revoke_role(&org, &account, "atlassian/user", resource)
        .await
        .expect("revoke");
    jira.application_roles().await.expect("roles");
    jira.application_role(&jsw).await.expect("role");
    jira.groups_for_application(&jsw)
        .collect_all()
        .await
        .expect("bulk");
    jira.group_members(&group, true)
        .collect_all()
        .await
        .expect("members");
    jira.user_groups(&account).await.expect("user groups");
    jira.user(&account).await.expect("user");
    jira.search_users("ada")
        .collect_all()
        .await
        .expect("search");
    jira.add_to_group(&group, &account).await.expect("add");
    jira.remove_from_group(&group, &account)
        .await
        .expect("remove");
    confluence.groups().collect_all().await.expect("groups");
    confluence
        .group_members(&group)
        .collect_all()
        .await
        .expect("members");
    confluence.user_groups(&account).await.expect("memberof");
    confluence
        .add_to_group(&group, &account)
        .await
        .expect("add");
    confluence
        .remove_from_group(&group, &account)
        .await
        .expect("remove");
    jsm.request(&issue).await.expect("request");
    jsm.add_comment(&issue, "done", true)
        .await
        .expect("comment");
    jsm.transition_by_name(&issue, "resolve", Some("Access restored"))
        .await
        .expect("transition");

    let specs = specs();
    let documented = documented_gaps();
    assert!(
        !documented.is_empty(),
        "the doc lists the operations absent from the specs"
    );
    let mut problems = Vec::new();
    let mut skipped = BTreeSet::new();
    let mut transcribed = BTreeSet::new();
    let mut checked = BTreeSet::new();
    for request in server.requests() {
        match conform(&specs, &documented, &request) {
            Ok(Checked::Official) => {
                checked.insert(format!("{} {}", request.method, request.path));
            }
            Ok(Checked::Transcribed(op)) => {
                transcribed.insert(op);
            }
            Ok(Checked::Absent(gap)) => {
                skipped.insert(gap);
            }
            Err(found) => problems.extend(found),
        }
    }
    assert!(
        problems.is_empty(),
        "requests that break the specs:\n{}",
        problems.join("\n")
    );
    // Exactly the documented list is outside the official documents: each entry is exercised,
    // checked against the transcribed fragment or (where it lacks one) skipped, and really
    // absent from the official documents.
    let listed: BTreeSet<String> = documented.iter().map(|(m, t)| format!("{m} {t}")).collect();
    let outside: BTreeSet<String> = skipped.union(&transcribed).cloned().collect();
    assert_eq!(
        outside, listed,
        "operations outside the official specs must be exactly the documented list"
    );
    assert!(
        transcribed.iter().any(|op| op.contains("/admin/v2/")),
        "the v2 admin calls are checked against the transcribed fragment: {transcribed:?}"
    );
    for (method, path) in &documented {
        let gap = format!("{method} {path}");
        // `/admin/v2/...` has no official document at all.
        let Some(spec) = specs
            .iter()
            .find(|s| path.starts_with(s.owns) && !s.transcribed)
        else {
            continue;
        };
        let paths = spec.doc["paths"].as_object().expect("paths");
        let in_spec = paths
            .get(&path[spec.strip.len()..])
            .and_then(|p| p.get(method.to_ascii_lowercase()));
        assert!(
            in_spec.is_none(),
            "{gap} is in an official spec after all; check it there"
        );
    }
    assert!(checked.len() >= 20, "checked only {checked:?}");
}
