use super::*;

fn group(id: &str, name: &str) -> GroupFact {
    GroupFact {
        id: GroupId::parse(id).unwrap(),
        name: name.into(),
    }
}

fn facts() -> Facts {
    Facts {
        product: ProductKey::JIRA_SOFTWARE,
        channel: Channel::Jsm,
        product_configured: true,
        account_type: AccountType::Atlassian,
        active: true,
        suspended: false,
        email: Some("ana@example.com".into()),
        groups: vec![group("g-staff", "staff")],
        journal_groups: vec![group("g-jira", "jira-software-users")],
        journal_roles: Vec::new(),
        seats: Seats::Remaining(10),
        has_justification: false,
    }
}

fn rules(text: &str) -> Vec<Rule> {
    #[derive(Deserialize)]
    struct File {
        rules: Vec<Rule>,
    }
    toml::from_str::<File>(text).unwrap().rules
}

const STAFF: &str = r#"
[[rules]]
name = "offboarded never"
member_of_any = ["leavers"]
decision = "deny"
message = "Leavers do not get access back."

[[rules]]
name = "contractors need approval"
email_domains = ["contractor.example"]
decision = "manual"

[[rules]]
name = "same domain, removed by reseat"
email_domains = ["example.com"]
removed_by_reseat = true
seat_reserve = 2
decision = "approve"
"#;

#[test]
fn first_matching_rule_wins_and_restores_exactly_the_journal() {
    let verdict = evaluate(&facts(), &rules(STAFF), &[]);
    assert_eq!(verdict.decision, Decision::Approve);
    assert_eq!(
        verdict.rule.as_deref(),
        Some("same domain, removed by reseat")
    );
    assert_eq!(
        verdict.groups_to_add,
        vec![group("g-jira", "jira-software-users")]
    );
    assert_eq!(verdict.trace.len(), 3);
    assert!(!verdict.trace[0].matched && !verdict.trace[1].matched && verdict.trace[2].matched);
}

#[test]
fn subdomains_match_and_other_domains_do_not() {
    let mut f = facts();
    f.email = Some("bob@EU.example.com".into());
    assert_eq!(evaluate(&f, &rules(STAFF), &[]).decision, Decision::Approve);
    f.email = Some("eve@notexample.com".into());
    let verdict = evaluate(&f, &rules(STAFF), &[]);
    assert_eq!(
        (verdict.decision, verdict.rule),
        (Decision::Manual, None),
        "default is manual"
    );
    f.email = None;
    assert_eq!(evaluate(&f, &rules(STAFF), &[]).decision, Decision::Manual);
}

#[test]
fn contractors_go_to_an_admin() {
    let mut f = facts();
    f.email = Some("c@contractor.example".into());
    let verdict = evaluate(&f, &rules(STAFF), &[]);
    assert_eq!(verdict.decision, Decision::Manual);
    assert_eq!(verdict.rule.as_deref(), Some("contractors need approval"));
}

#[test]
fn a_deny_rule_carries_its_message() {
    let mut f = facts();
    f.groups.push(group("g-leavers", "Leavers"));
    let verdict = evaluate(&f, &rules(STAFF), &[]);
    assert_eq!(verdict.decision, Decision::Deny);
    assert_eq!(verdict.message, "Leavers do not get access back.");
}

#[test]
fn the_seat_reserve_holds_seats_back() {
    let mut f = facts();
    f.seats = Seats::Remaining(2);
    assert_eq!(evaluate(&f, &rules(STAFF), &[]).decision, Decision::Manual);
    f.seats = Seats::Unknown;
    assert_eq!(evaluate(&f, &rules(STAFF), &[]).decision, Decision::Manual);
    f.seats = Seats::Unlimited;
    assert_eq!(evaluate(&f, &rules(STAFF), &[]).decision, Decision::Approve);
}

#[test]
fn guards_beat_every_rule() {
    let approve_all = rules("[[rules]]\nname = \"all\"\ndecision = \"approve\"\n");
    type Change = Box<dyn Fn(&mut Facts)>;
    let cases: Vec<(Change, Guard)> = vec![
        (
            Box::new(|f| f.account_type = AccountType::App),
            Guard::AppAccount,
        ),
        (
            Box::new(|f| f.account_type = AccountType::Customer),
            Guard::CustomerAccount,
        ),
        (Box::new(|f| f.active = false), Guard::AccountInactive),
        (Box::new(|f| f.suspended = true), Guard::AccountSuspended),
        (
            Box::new(|f| f.product_configured = false),
            Guard::ProductNotConfigured,
        ),
        (
            Box::new(|f| f.groups.push(group("g-off", "offboarded"))),
            Guard::Offboarded {
                group: "offboarded".into(),
            },
        ),
    ];
    for (change, expected) in cases {
        let mut f = facts();
        change(&mut f);
        let verdict = evaluate(&f, &approve_all, &["offboarded".to_string()]);
        assert_eq!(verdict.decision, Decision::Deny);
        assert_eq!(verdict.guard, Some(expected));
        assert!(verdict.groups_to_add.is_empty());
    }
}

#[test]
fn an_approval_without_journal_uses_only_the_rules_groups_or_asks_an_admin() {
    let mut f = facts();
    f.journal_groups.clear();
    let plain = rules("[[rules]]\nname = \"all\"\ndecision = \"approve\"\n");
    let verdict = evaluate(&f, &plain, &[]);
    assert_eq!(
        verdict.decision,
        Decision::Manual,
        "no groups to give: an admin decides"
    );
    let granting = rules(
        "[[rules]]\nname = \"new staff\"\ndecision = \"approve\"\ngrant_groups = [\"g-default\"]\n",
    );
    let verdict = evaluate(&f, &granting, &[]);
    assert_eq!(verdict.decision, Decision::Approve);
    assert_eq!(verdict.groups_to_add.len(), 1);
    assert_eq!(verdict.groups_to_add[0].id.as_str(), "g-default");
}

#[test]
fn explain_names_each_rule_and_the_failing_condition() {
    let mut f = facts();
    f.email = Some("c@contractor.example".into());
    let text = evaluate(&f, &rules(STAFF), &[]).explain();
    assert!(
        text.contains("rule \"offboarded never\": no match"),
        "{text}"
    );
    assert!(text.contains("FAIL member of any of [leavers]"), "{text}");
    assert!(
        text.contains("rule \"contractors need approval\": MATCHED"),
        "{text}"
    );
    assert!(
        text.contains("decision: manual (rule \"contractors need approval\")"),
        "{text}"
    );
}

#[test]
fn a_group_reseat_removed_still_counts_for_membership_rules() {
    let mut f = facts();
    f.groups.clear();
    f.journal_groups = vec![group("g-contract", "jira-contractors")];
    let contractors = rules(
        "[[rules]]\nname = \"contractors\"\nmember_of_any = [\"jira-contractors\"]\ndecision = \"manual\"\n[[rules]]\nname = \"rest\"\ndecision = \"approve\"\n",
    );
    assert_eq!(
        evaluate(&f, &contractors, &[]).rule.as_deref(),
        Some("contractors")
    );
    // But offboarding looks only at the groups the account is in now.
    assert_eq!(
        evaluate(&f, &contractors, &["jira-contractors".to_string()]).guard,
        None
    );
}
