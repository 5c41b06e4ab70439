//! The client against the in-repo simulator (`reseat::sim`): a 5,000-user org listed through
//! 20 % injected faults gives exactly what a fault-free listing gives, and every call round-trips
//! against the simulator's state.

use reseat::atlassian::{
    AccountId, AtlassianClients, AtlassianConfig, FamilyLimits, GroupId, IssueKey,
    MembershipOutcome, OrgId, ProductKey, RetrySettings,
};
use reseat::sim::{FaultPatch, NewRequest, SimConfig, SimHandle};
use std::collections::BTreeMap;
use std::time::Duration;

fn clients_for(sim: &SimHandle, timeout: Duration) -> AtlassianClients {
    let fast = FamilyLimits {
        requests_per_second: 10_000,
        concurrency: 8,
    };
    let config = AtlassianConfig {
        admin: fast,
        jira: fast,
        confluence: fast,
        jsm: fast,
        retry: RetrySettings {
            max_attempts: 12,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_wait: Duration::from_secs(5),
            timeout,
        },
        ..reseat::demo::atlassian_for(sim)
    };
    AtlassianClients::new(&config).expect("clients")
}

/// Everything reseat reads in a sweep: org users with per-product activity, and the members
/// of every Jira licence group and Confluence group.
async fn snapshot(clients: &AtlassianClients) -> BTreeMap<String, Vec<String>> {
    let mut seen = BTreeMap::new();
    let org = clients.org_id.clone().expect("org");
    let admin = clients.admin.as_ref().expect("admin");
    let mut users = Vec::new();
    admin
        .users(&org)
        .for_each_page(|page| {
            users.extend(page.into_iter().map(|u| {
                let products: Vec<String> = u
                    .product_access
                    .iter()
                    .map(|p| format!("{}@{:?}", p.key, p.last_active))
                    .collect();
                format!(
                    "{} {:?} {:?} {}",
                    u.account_id,
                    u.account_type,
                    u.account_status,
                    products.join(",")
                )
            }));
            Ok::<_, reseat::atlassian::AtlassianError>(())
        })
        .await
        .expect("org users");
    seen.insert("admin users".to_owned(), users);
    let jira = clients.jira.as_ref().expect("jira");
    for product in [
        ProductKey::JIRA_SOFTWARE,
        ProductKey::JIRA_SERVICE_MANAGEMENT,
    ] {
        let groups = jira
            .groups_for_application(&product)
            .collect_all()
            .await
            .expect("groups");
        for group in groups {
            let members = jira
                .group_members(&group.group_id, true)
                .collect_all()
                .await
                .expect("members");
            let mut ids: Vec<String> = members
                .into_iter()
                .map(|m| m.account_id.to_string())
                .collect();
            ids.sort();
            seen.insert(format!("jira {product} {}", group.name), ids);
        }
    }
    let confluence = clients.confluence.as_ref().expect("confluence");
    for group in confluence.groups().collect_all().await.expect("groups") {
        let members = confluence
            .group_members(&group.id)
            .collect_all()
            .await
            .expect("members");
        let mut ids: Vec<String> = members
            .into_iter()
            .map(|m| m.account_id.to_string())
            .collect();
        ids.sort();
        seen.insert(format!("confluence {}", group.name), ids);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_user_org_lists_the_same_through_20_percent_faults() {
    let config = SimConfig {
        users: 5_000,
        seed: 7,
        ..SimConfig::default()
    };
    let clean = reseat::sim::spawn(config.clone()).await.expect("sim");
    let expected = snapshot(&clients_for(&clean, Duration::from_secs(10))).await;
    let listed = expected["admin users"].len();
    assert!(
        listed > 1_000 && listed <= 5_000,
        "managed accounts listed: {listed}"
    );
    let faulty = reseat::sim::spawn(SimConfig {
        fail_rate: 0.2,
        ..config
    })
    .await
    .expect("sim");
    faulty
        .state()
        .set_faults(FaultPatch {
            timeout_ms: Some(300),
            ..FaultPatch::default()
        })
        .expect("faults");
    let got = snapshot(&clients_for(&faulty, Duration::from_secs(1))).await;
    assert_eq!(got, expected);
    let faults = faulty
        .state()
        .log()
        .iter()
        .filter(|e| e.fault.is_some())
        .count();
    assert!(faults > 10, "faults were injected: {faults}");
}

#[tokio::test]
async fn membership_and_jsm_calls_round_trip_against_the_simulator() {
    let sim = reseat::sim::spawn(SimConfig {
        users: 50,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let clients = clients_for(&sim, Duration::from_secs(10));
    let jira = clients.jira.as_ref().expect("jira");
    let confluence = clients.confluence.as_ref().expect("confluence");
    let roles = jira.application_roles().await.expect("roles");
    let role = roles
        .iter()
        .find(|r| r.key == ProductKey::JIRA_SOFTWARE)
        .expect("jira-software role");
    let group: GroupId = role.group_details[0].group_id.clone();
    let member = sim.state().group_members(group.as_str()).expect("group")[0].clone();
    let account = AccountId::parse(member).expect("account");

    assert_eq!(
        jira.remove_from_group(&group, &account)
            .await
            .expect("remove"),
        MembershipOutcome::Changed
    );
    assert_eq!(
        jira.remove_from_group(&group, &account)
            .await
            .expect("again"),
        MembershipOutcome::AlreadyInPlace
    );
    assert!(
        !jira
            .user_groups(&account)
            .await
            .expect("groups")
            .iter()
            .any(|g| g.group_id == group)
    );
    assert_eq!(
        jira.add_to_group(&group, &account).await.expect("add"),
        MembershipOutcome::Changed
    );
    assert_eq!(
        jira.add_to_group(&group, &account).await.expect("again"),
        MembershipOutcome::AlreadyInPlace
    );
    let user = jira.user(&account).await.expect("user");
    assert!(
        user.groups
            .unwrap_or_default()
            .iter()
            .any(|g| g.group_id == group)
    );

    let cgroups = confluence.user_groups(&account).await.expect("memberof");
    if let Some(cgroup) = cgroups.first() {
        // The simulator answers Confluence repeats with a plain success, so either outcome is
        // fine for the second call; what matters is that it is not an error.
        assert_eq!(
            confluence
                .remove_from_group(&cgroup.id, &account)
                .await
                .expect("remove"),
            MembershipOutcome::Changed
        );
        confluence
            .remove_from_group(&cgroup.id, &account)
            .await
            .expect("again");
        assert!(
            !confluence
                .user_groups(&account)
                .await
                .expect("memberof")
                .contains(cgroup)
        );
        assert_eq!(
            confluence
                .add_to_group(&cgroup.id, &account)
                .await
                .expect("add"),
            MembershipOutcome::Changed
        );
        confluence
            .add_to_group(&cgroup.id, &account)
            .await
            .expect("again");
        assert!(
            confluence
                .user_groups(&account)
                .await
                .expect("memberof")
                .contains(cgroup)
        );
    }

    let admin = clients.admin.as_ref().expect("admin");
    let org = OrgId::parse(sim.config().org_id.clone()).expect("org");
    assert!(
        admin
            .orgs()
            .collect_all()
            .await
            .expect("orgs")
            .iter()
            .any(|o| o.id == org)
    );
    admin
        .last_active_dates(&org, &account)
        .await
        .expect("last active");
    admin.suspend(&org, &account).await.expect("suspend");
    admin.restore(&org, &account).await.expect("restore");

    let request = sim
        .state()
        .create_request(NewRequest {
            reporter: account.to_string(),
            request_type_id: None,
            summary: None,
            description: None,
            product: None,
            justification: None,
        })
        .expect("request");
    let jsm = clients.jsm.as_ref().expect("jsm");
    let key = IssueKey::parse(request.key.clone()).expect("key");
    let fetched = jsm.request(&key).await.expect("request");
    assert_eq!(fetched.reporter.expect("reporter").account_id, account);
    jsm.add_comment(&key, "Access restored.", true)
        .await
        .expect("comment");
    let transitions = jsm.transitions(&key).await.expect("transitions");
    let first = transitions.first().expect("a transition").name.clone();
    jsm.transition_by_name(&key, &first, Some("done"))
        .await
        .expect("transition");
    assert_ne!(
        sim.state().request(&request.key).expect("request").status,
        request.status
    );
}
