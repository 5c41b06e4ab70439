//! The command line as a user meets it: `config check`, one-line errors, exit codes.

use std::process::{Command, Output};

use crate::support::{cookie_of, repo_root, reseat_bin};

fn reseat(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(reseat_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RESEAT_DATABASE__URL")
        .output()
        .expect("reseat runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn the_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("reseat.example.toml");
    let output = reseat(
        dir.path(),
        &["config", "check", "--config", example.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("[server]") && printed.contains("listen = "),
        "{printed}"
    );
}

fn check_with(contents: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), contents).unwrap();
    reseat(dir.path(), &["config", "check", "--config", "bad.toml"])
}

#[test]
fn a_bad_duration_is_one_line_and_exit_2() {
    let output = check_with("[queue]\nlease = \"ninety\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: queue.lease: expected a duration like \"90d\", got \"ninety\"\n"
    );
}

#[test]
fn an_unknown_key_is_one_line_and_exit_2() {
    let output = check_with("[database]\nurls = \"sqlite://x.db\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: database.urls: unknown key; did you mean \"url\"?\n"
    );
}

#[test]
fn a_missing_secret_file_is_one_line_and_exit_2() {
    let output = check_with("[database]\nurl_file = \"/nonexistent/db-url\"\n");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.starts_with(
            "config: database.url_file: cannot read the secret file \"/nonexistent/db-url\""
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn an_unreachable_database_is_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(reseat_bin())
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "RESEAT_DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/reseat",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("database.url: cannot connect to postgres://postgres@127.0.0.1:1/reseat"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let output = Command::new(reseat_bin())
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "RESEAT_DATABASE__URL",
            "sqlite:///nonexistent-dir/reseat.db",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "database.url: the directory /nonexistent-dir for the SQLite file does not exist; create it or point database.url elsewhere\n"
    );
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let output = reseat(dir.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn a_missing_required_secret_is_one_line_and_exit_2() {
    let output = check_with("[atlassian]\norg_id = \"0f1e2d3c-aaaa\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: atlassian.admin_api_key: required secret is missing; set atlassian.admin_api_key, atlassian.admin_api_key_file or RESEAT_ATLASSIAN__ADMIN_API_KEY\n"
    );
}

#[test]
fn config_check_redacts_secrets_from_files_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "admin-key-from-file\n").unwrap();
    let hash = reseat::web::admin::auth::hash_password("correct horse").unwrap();
    std::fs::write(
        dir.path().join("reseat.toml"),
        format!(
            "[atlassian]\norg_id = \"0f1e2d3c\"\nadmin_api_key_file = \"key\"\nsite_name = \"acme\"\nsite_email = \"admin@acme.test\"\n[[admin.users]]\nname = \"ana\"\npassword_hash = {hash:?}\n"
        ),
    )
    .unwrap();
    let output = Command::new(reseat_bin())
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("RESEAT_ATLASSIAN__SITE_API_TOKEN", "token-from-env")
        .env(
            "RESEAT_DATABASE__URL",
            "postgres://reseat:db-password-42@db.internal:5432/reseat",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    let all = format!("{printed}{}", stderr(&output));
    assert!(!all.contains("db-password-42"), "{all}");
    assert!(
        printed.contains("postgres://reseat:[redacted]@db.internal:5432/reseat"),
        "{printed}"
    );
    assert!(
        printed.contains("admin_api_key = \"[redacted]\""),
        "{printed}"
    );
    assert!(
        printed.contains("site_api_token = \"[redacted]\""),
        "{printed}"
    );
    assert!(
        !printed.contains("admin-key-from-file") && !printed.contains("token-from-env"),
        "{printed}"
    );
    assert!(printed.contains("name = \"ana\""), "{printed}");
    assert!(
        !printed.contains("$argon2id$"),
        "password hashes are redacted too: {printed}"
    );
}

/// The first screen of `reseat demo` is its guide: within 25 lines, what to open, every
/// channel's secret and a command that works, and how to get a new sign-in link.
#[test]
fn demo_prints_its_guide_and_every_printed_link_and_command_works() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(reseat_bin())
        .args(["demo", "--port", "0", "--users", "60", "--dir"])
        .arg(dir.path())
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let log = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let logged = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(log), &mut text).ok();
        text
    });
    let mut guide = Vec::new();
    while guide.len() < 25 {
        let line = receiver
            .recv_timeout(std::time::Duration::from_secs(180))
            .expect("the demo prints its guide");
        let last = line.starts_with("logs:");
        guide.push(line);
        if last {
            break;
        }
    }
    let text = guide.join("\n");
    assert!(
        guide.last().unwrap().starts_with("logs:"),
        "the guide ends within 25 lines:\n{text}"
    );
    let value = |key: &str| -> String {
        guide
            .iter()
            .find_map(|line| line.trim_start().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
            .to_string()
    };
    let app = value("app");
    let app = app.trim_end_matches('/').to_string();
    let admin_link = value("admin");
    let restore_link = value("restore");
    assert!(
        admin_link.starts_with(&format!("{app}/admin/login/")),
        "{text}"
    );
    assert!(
        restore_link.starts_with(&format!("{app}/restore/")),
        "{text}"
    );
    assert!(std::path::Path::new(&value("outbox")).is_dir());
    assert_eq!(
        value("jsm secret").split(' ').next(),
        Some(reseat::demo::DEMO_JSM_SECRET)
    );
    assert_eq!(
        value("automation secret").split(' ').next(),
        Some(reseat::demo::DEMO_AUTOMATION_SECRET)
    );
    assert_eq!(
        value("webhook secret").split(' ').next(),
        Some(reseat::demo::demo_webhook_secret().as_str())
    );
    assert_eq!(
        value("api token").split(' ').next(),
        Some(reseat::demo::DEMO_API_TOKEN)
    );
    assert_eq!(
        value("slack signing secret").split(' ').next(),
        Some(reseat::demo::DEMO_SLACK_SIGNING_SECRET)
    );
    assert!(text.contains("login-link --dir"), "{text}");

    // Every channel's command, pasted into a shell, is accepted.
    for channel in ["jsm", "automation", "webhook"] {
        let command = value(channel);
        let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        assert!(
            printed.contains("\"status\":\"accepted\""),
            "{command}: {printed}"
        );
    }
    // The Slack command, against the demo's fake Slack: answered at once, and the outcome
    // follows through the command's response_url.
    let command = value("slack");
    let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{command}: {}", stderr(&output));
    assert!(printed.starts_with("answer: Working on it"), "{printed}");
    assert!(
        printed.contains("follow-up: Your access to") && printed.contains("has been restored"),
        "{command}: {printed}"
    );
    let api = Command::new("sh")
        .arg("-c")
        .arg(value("api"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&api.stdout);
    for channel in ["jsm", "automation", "webhook", "slack"] {
        assert!(
            listed.contains(&format!("\"channel\":\"{channel}\"")),
            "{listed}"
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let landing = http.get(format!("{app}/")).send().await.unwrap();
        assert_eq!(landing.status(), 200);
        let page = landing.text().await.unwrap();
        for href in ["href=\"/admin\"", "href=\"/healthz\""] {
            assert!(page.contains(href), "{page}");
        }
        let restore = http.get(&restore_link).send().await.unwrap();
        assert_eq!(restore.status(), 200);
        let sim = reqwest::get(format!("{}/_sim/info", value("simulator")))
            .await
            .unwrap();
        assert_eq!(sim.status(), 200);

        // A fresh link for the running demo, from another process, signs in.
        let fresh = reseat(
            dir.path(),
            &["admin", "login-link", "--dir", dir.path().to_str().unwrap()],
        );
        assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
        let fresh = String::from_utf8_lossy(&fresh.stdout)
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert!(fresh.starts_with(&format!("{app}/admin/login/")), "{fresh}");
        let page = http.get(&fresh).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let cookie = cookie_of(&page, "reseat_admin_login");
        let text = page.text().await.unwrap();
        let start = text.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &text[start..start + text[start..].find('"').unwrap()];
        let signed_in = http
            .post(&fresh)
            .header("cookie", cookie)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303);
        let session = cookie_of(&signed_in, "reseat_admin");
        let overview = http
            .get(format!("{app}/admin"))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(overview.status(), 200);
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Warnings only by default: none of the ~100 "email sent" lines.
    let logged = logged.join().unwrap();
    assert!(!logged.contains("email sent"), "{logged}");
}

/// Without a configuration, commands that need a database say so in one line and leave
/// nothing behind; only `migrate` (and `serve`, `demo`) create one.
#[test]
fn commands_without_a_database_say_so_and_create_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["sweep", "plan"],
        &["sweep", "apply", "--yes"],
        &["sweep"],
        &["requests", "list"],
        &[
            "requests",
            "approve",
            "01a235c3-f2ef-7261-b541-b72364ffacea",
        ],
        &[
            "rules",
            "explain",
            "--account",
            "5b10ac8d82e05b22cc7d4ef5",
            "--product",
            "confluence",
        ],
        &["admin", "login-link", "--name", "ana"],
    ];
    for args in commands {
        let output = reseat(dir.path(), args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(
            message.contains("no database at reseat.db"),
            "{args:?}: {message}"
        );
        assert!(message.contains("reseat migrate"), "{args:?}: {message}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    let output = reseat(dir.path(), &["migrate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(dir.path().join("reseat.db").is_file());
    let output = reseat(dir.path(), &["requests", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// `config check` refuses what a run would refuse offline, naming the key; `jira` is a
/// product the table knows (Jira Software's v2 key).
#[test]
fn config_check_refuses_what_a_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        std::fs::write(dir.path().join("reseat.toml"), text).unwrap();
        reseat(dir.path(), &["config", "check"])
    };
    let refused: &[(&str, &str)] = &[
        (
            "[sweep.products.confluence]\ninactive_after = \"90d\"\n",
            "sweep.products.confluence.access_groups: Confluence has no access groups",
        ),
        (
            "[sweep.products.confluence]\naccess_groups = [\"confluence-users\"]\n",
            "sweep.products.confluence.access_groups[0]: expected a group id",
        ),
        (
            "[sweep.products.bogus]\ninactive_after = \"90d\"\n",
            "sweep.products.bogus",
        ),
        (
            "[[restore.rules]]\nname = \"staff\"\ndecision = \"approve\"\ngrant_groups = [\"jira-users\"]\n",
            "restore.rules[0].grant_groups[0]: expected a group id",
        ),
    ];
    for (text, expected) in refused {
        let output = check(text);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}: {message}");
        assert!(message.contains(expected), "{text}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    let accepted = [
        "[sweep.products.jira]\ninactive_after = \"90d\"\n",
        "[sweep.products.confluence]\naccess_groups = [\"5e471e1f-3739-492e-9243-da17fc8090eb\"]\n",
        // A plan that is not blocked by missing groups does not need them.
        "[sweep.governance]\nblock_on_missing_access_groups = false\n[sweep.products.confluence]\ninactive_after = \"90d\"\n",
    ];
    for text in accepted {
        let output = check(text);
        assert_eq!(output.status.code(), Some(0), "{text}: {}", stderr(&output));
    }
}

/// Options that take one of a closed set refuse anything else, before touching anything.
#[test]
fn closed_sets_on_the_command_line_refuse_unknown_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = reseat(dir.path(), &["requests", "list", "--status", "bogus"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        message.contains("expected one of received, approved"),
        "{message}"
    );
    let account = "5b10ac8d82e05b22cc7d4ef5";
    for args in [
        &[
            "rules",
            "explain",
            "--account",
            account,
            "--product",
            "bogus",
        ][..],
        &[
            "link",
            "--account",
            account,
            "--product",
            "bogus",
            "--site",
            "acme",
        ][..],
    ] {
        let output = reseat(dir.path(), args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(
            message.contains("unknown product \"bogus\""),
            "{args:?}: {message}"
        );
        assert!(
            message.contains("jira-software (Jira)"),
            "{args:?}: {message}"
        );
    }
    // `jira` is Jira Software's key on the v2 API: accepted (here the database is missing).
    let output = reseat(
        dir.path(),
        &[
            "rules",
            "explain",
            "--account",
            account,
            "--product",
            "jira",
        ],
    );
    let message = stderr(&output);
    assert!(!message.contains("unknown product"), "{message}");
    assert!(message.contains("no database"), "{message}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn a_port_in_use_is_said_once_in_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = reseat(dir.path(), &["serve", "--listen", &addr]);
    assert!(!output.status.success());
    let text = stderr(&output);
    let line = text.trim_end();
    assert!(!line.contains('\n'), "one line: {text}");
    assert!(line.contains(&format!("cannot listen on {addr}")), "{text}");
    let cause = line.to_lowercase();
    assert_eq!(
        cause.matches("address already in use").count() + cause.matches("address in use").count(),
        1,
        "{text}"
    );
}

/// `config check --online` against the simulator: what it reads, and each way the site
/// can disagree with the file, every one a line and exit status 2, with nothing changed.
#[tokio::test]
async fn config_check_online_asks_the_site_and_names_each_disagreement() {
    let sim = crate::ledger::sim(40).await;
    let dir = tempfile::tempdir().unwrap();
    let db = crate::support::TestDb::sqlite();
    let base = crate::ledger::config_for(&sim, &db, dir.path());
    let check = |config: reseat::config::Config, name: &'static str| {
        let path = dir.path().join(name);
        crate::ledger::write_config(&config, &sim, &path);
        async move {
            crate::ledger::reseat_cli(&path, &["config", "check", "--online"])
                .output()
                .await
                .unwrap()
        }
    };
    let calls_before = sim.state().log().len();

    let output = check(base.clone(), "good.toml").await;
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("online: the admin API key administers org"),
        "{text}"
    );
    assert!(text.contains("online: Jira through "), "{text}");
    assert!(text.contains("online: Confluence through "), "{text}");
    assert!(text.contains("config: ok, and the site agrees"), "{text}");

    // A Confluence access group id that is no group of the site.
    let mut config = base.clone();
    let missing = "00000000-0000-4000-8000-00000000dead";
    config
        .sweep
        .products
        .get_mut("confluence")
        .unwrap()
        .access_groups = vec![reseat::atlassian::GroupId::parse(missing).unwrap()];
    let output = check(config, "group.toml").await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "online: problem: group {missing} (sweep.products.confluence.access_groups) is not a group of the site"
        )),
        "{text}"
    );

    // An org the key does not administer.
    let mut config = base.clone();
    config.atlassian.org_id = Some("11111111-2222-4333-8444-555555555555".into());
    let output = check(config, "org.toml").await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("atlassian.org_id 11111111-2222-4333-8444-555555555555 is not an org"),
        "{text}"
    );

    // A protect group the site does not have.
    let mut config = base.clone();
    config.sweep.protect.groups = vec!["no-such-group".into()];
    let output = check(config, "protect.toml").await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("group no-such-group (sweep.protect) does not exist"),
        "{text}"
    );

    // Nothing was changed on the site: only reads were sent.
    let log = sim.state().log();
    assert!(
        log[calls_before..].iter().all(|call| call.method == "GET"),
        "{:?}",
        &log[calls_before..]
    );
}

/// A role that does not exist, or a scope naming an unknown site or product, is one line
/// from `config check` and exit 2; a valid role scoped to the site and JSM passes, and
/// `admin whoami --token` says what the token may do.
#[test]
fn a_bad_role_or_scope_is_one_line_and_exit_2_and_whoami_names_the_grant() {
    let digest = reseat::web::config::hash_token("t0ken");
    let entry = |extra: &str| {
        format!(
            "[atlassian]\nsite_name = \"support\"\n[[admin.api_tokens]]\nname = \"ci\"\ntoken_sha256 = \"{digest}\"\n{extra}\n"
        )
    };
    for (extra, place) in [
        ("role = \"boss\"", "admin.api_tokens"),
        (
            "role = \"approver\"\nsites = [\"sales\"]",
            "admin.api_tokens[0].sites[0]",
        ),
        (
            "role = \"approver\"\nproducts = [\"jira-align\"]",
            "admin.api_tokens[0].products[0]",
        ),
    ] {
        let output = check_with(&entry(extra));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains(place), "{extra}: {message}");
    }
    let output = check_with(&entry(""));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("note: api:ci set no role"),
        "{}",
        stderr(&output)
    );
    // A scoped approver decides (each item is checked against the scope).
    let good = entry(
        "role = \"approver\"\nsites = [\"support\"]\nproducts = [\"Jira Service Management\"]",
    );
    let output = check_with(&good);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), &good).unwrap();
    let output = reseat(
        dir.path(),
        &["admin", "whoami", "--config", "c.toml", "--token", "t0ken"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        printed,
        "name: api:ci\nrole: approver\nsites: support\nproducts: jira-service-desk\nactions: read, decide\n"
    );
}

/// `[[sites]]`: a site named twice, a site without credentials or cloud id, an unknown
/// product, or a scope or price naming an unknown site is one line and exit 2; a good
/// file passes, and a file naming one site in `[atlassian]` gets a note pointing at
/// `[[sites]]`.
#[test]
fn config_check_knows_every_site_and_refuses_a_bad_one_in_one_line() {
    let org = "[atlassian]\norg_id = \"5f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f\"\nadmin_api_key = \"k\"\nsite_email = \"admin@acme.example\"\nsite_api_token = \"t\"\n[sweep.products.jira]\ninactive_after = \"90d\"\n[sweep.products.jira-servicedesk]\ninactive_after = \"90d\"\n";
    let site =
        |name: &str, cloud: &str| format!("[[sites]]\nname = \"{name}\"\ncloud_id = \"{cloud}\"\n");
    let good = format!(
        "{org}{}products = [\"jira\"]\n[sites.sweep.products.jira]\ninactive_after = \"30d\"\n{}products = [\"jira-servicedesk\"]\n",
        site("acme", "c1"),
        site("acme-support", "c2")
    );
    let output = check_with(&good);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("note: [atlassian] names one site"));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("[[sites]]") && printed.contains("acme-support"),
        "{printed}"
    );
    assert!(
        !printed.contains("\"t\""),
        "the site token is redacted: {printed}"
    );

    let refused: Vec<(String, &str)> = vec![
        (
            format!(
                "{org}{}{}",
                site("acme", "c1"),
                site("acme.atlassian.net", "c2")
            ),
            "sites[1].name: the site \"acme\" is listed twice",
        ),
        (
            format!(
                "[atlassian]\norg_id = \"5f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f\"\nadmin_api_key = \"k\"\n{}",
                site("acme", "c1")
            ),
            "sites[0] (acme).site_api_token: this site has no credentials",
        ),
        (
            format!("{org}[[sites]]\nname = \"acme\"\n"),
            "sites[0] (acme).cloud_id: required",
        ),
        (
            format!("{org}{}products = [\"confluence\"]\n", site("acme", "c1")),
            "sites[0] (acme).products: \"confluence\" has no [sweep.products.confluence] section",
        ),
        (
            format!(
                "{org}{}[sites.sweep.products.jira]\ninactive_after = \"soon\"\n",
                site("acme", "c1")
            ),
            "sites[0] (acme).sweep.products.jira.inactive_after",
        ),
        (
            format!(
                "{org}{}[[admin.users]]\nname = \"ana\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo\"\nrole = \"approver\"\nsites = [\"acme-eu\"]\n",
                site("acme", "c1")
            ),
            "unknown site \"acme-eu\"; configured sites: acme",
        ),
        (
            format!(
                "{}{}",
                org.replace("[atlassian]\n", "[atlassian]\nsite_name = \"acme\"\n"),
                site("acme-eu", "c1")
            ),
            "atlassian.site_name: with [[sites]]",
        ),
    ];
    for (text, expected) in &refused {
        let output = check_with(text);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}: {message}");
        assert!(message.contains(expected), "{text}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }

    // Written for one site: still valid, with a note pointing at the new form.
    let output = check_with("[atlassian]\nsite_name = \"acme\"\n");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said = stderr(&output);
    let notes: Vec<&str> = said.lines().filter(|l| l.contains("[[sites]]")).collect();
    assert_eq!(notes.len(), 1, "{}", stderr(&output));
    assert!(notes[0].starts_with("config: note: [atlassian] names one site (acme)"));
}

/// `reseat requests approve` and `reseat sweep plan|apply` as each role (`--as NAME`):
/// allowed, audited with the admin and the role; or one line, exit 2, counted as a refusal
/// and nothing changed. A credential scoped to JSM is refused on a Jira request and on a
/// plan of every product; without `--as` the CLI acts as `cli`, owner.
#[tokio::test]
async fn acting_cli_commands_as_each_role_are_allowed_and_audited_or_one_line_exit_2() {
    use crate::ledger::{config_for, reseat_cli, sim, write_config};
    use crate::support::{TestDb, spawn_configured};
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sim = sim(150).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&sim, &db, dir.path());
        config.log.level = "warn".into();
        config.sweep.mode = reseat::sweep::config::Mode::DryRun;
        config.restore.rules = Vec::new();
        let file = dir.path().join("reseat.toml");
        write_config(&config, &sim, &file);
        // The admins, added to the file (a serialized config redacts password hashes).
        let hash = reseat::web::admin::auth::hash_password("pw").unwrap();
        let mut value: toml::Value =
            toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut users = Vec::new();
        for (name, role, products) in [
            ("viewer", "viewer", vec![]),
            ("approver", "approver", vec![]),
            ("operator", "operator", vec![]),
            ("owner", "owner", vec![]),
            ("jsm", "operator", vec!["jira-servicedesk"]),
        ] {
            let mut user = toml::map::Map::new();
            user.insert("name".into(), name.into());
            user.insert("password_hash".into(), hash.clone().into());
            user.insert("role".into(), role.into());
            user.insert("products".into(), products.into());
            users.push(toml::Value::Table(user));
        }
        value
            .as_table_mut()
            .unwrap()
            .entry("admin")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap()
            .insert("users".into(), toml::Value::Array(users));
        std::fs::write(&file, toml::to_string(&value).unwrap()).unwrap();
        let app = spawn_configured(db, config, axum::Router::new()).await;
        let count = |sql: String| {
            let pool = app.state.db.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let run = |args: Vec<String>| {
            let file = file.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let output = reseat_cli(&file, &args).output().await.unwrap();
                (
                    output.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&output.stderr)
                        .trim_end()
                        .to_string(),
                )
            }
        };
        let refused_as = |name: &str| {
            format!(
                "SELECT COUNT(*) FROM audit_refusals WHERE action = 'role.refused' AND source = 'admin:{name}'"
            )
        };

        // A pending Jira Software request (no rule: an admin decides).
        let account = sim
            .state()
            .ground_truth()
            .users
            .iter()
            .find(|u| {
                u.account_status == reseat::sim::AccountStatus::Active
                    && !u.suspended
                    && !u.offboarded
                    && u.account_type == reseat::sim::AccountType::Atlassian
            })
            .map(|u| u.account_id.clone())
            .unwrap();
        let response = app
            .client
            .post(app.url("/hooks/automation"))
            .header("X-Reseat-Token", reseat::demo::DEMO_AUTOMATION_SECRET)
            .json(&serde_json::json!({ "accountId": account, "product": "jira-software" }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        let request = body["requestId"].as_str().unwrap().to_string();
        app.drain_queue().await;
        let status = format!(
            "SELECT COUNT(*) FROM restore_requests WHERE id = '{request}' AND status = 'pending'"
        );
        assert_eq!(count(status.clone()).await, 1, "{backend}");

        // approve: viewer refused; the scoped operator refused (out of scope); the others
        // allowed (the request waits again: reseat has no record of removing it).
        for (name, allowed) in [
            (Some("viewer"), false),
            (Some("jsm"), false),
            (Some("approver"), true),
            (Some("operator"), true),
            (Some("owner"), true),
            (None, true),
        ] {
            let mut args = vec!["requests".to_string(), "approve".into(), request.clone()];
            if let Some(name) = name {
                args.extend(["--as".to_string(), name.to_string()]);
            }
            let (code, stderr) = run(args).await;
            let (actor, role) = match name {
                Some("jsm") => ("admin:jsm".to_string(), "operator"),
                Some(name) => (format!("admin:{name}"), name),
                None => ("cli".to_string(), "owner"),
            };
            let approvals = format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'restore.approved' AND actor = '{actor}' AND role = '{role}'"
            );
            if allowed {
                assert_eq!(code, 0, "{backend}: {name:?}: {stderr}");
                assert_eq!(count(approvals).await, 1, "{backend}: {name:?}");
            } else {
                assert_eq!(code, 2, "{backend}: {name:?}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "{backend}: {stderr}");
                assert!(stderr.contains("nothing was changed"), "{stderr}");
                if name == Some("viewer") {
                    assert!(stderr.contains("viewer and may not decide"), "{stderr}");
                } else {
                    assert!(
                        stderr.contains("outside the scope of admin:jsm"),
                        "{stderr}"
                    );
                }
                let name = name.unwrap();
                assert_eq!(count(approvals).await, 0, "{backend}: {name}");
                assert_eq!(count(refused_as(name)).await, 1, "{backend}: {name}");
                assert_eq!(count(status.clone()).await, 1, "{backend}: still pending");
            }
        }

        // sweep plan and apply (dry run): viewer and approver may not; the JSM operator may
        // not plan the whole site nor apply a plan of every product.
        let (code, stderr) = run(vec![
            "sweep".into(),
            "plan".into(),
            "--as".into(),
            "viewer".into(),
        ])
        .await;
        assert_eq!(code, 2, "{backend}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let plans = "SELECT COUNT(*) FROM plans".to_string();
        assert_eq!(count(plans.clone()).await, 0, "{backend}: no plan was made");
        let (code, stderr) = run(vec![
            "sweep".into(),
            "plan".into(),
            "--as".into(),
            "operator".into(),
        ])
        .await;
        assert_eq!(code, 0, "{backend}: {stderr}");
        assert_eq!(count(plans.clone()).await, 1, "{backend}");
        assert_eq!(
            count("SELECT COUNT(*) FROM audit_log WHERE action = 'sweep.plan_requested' AND actor = 'admin:operator' AND role = 'operator'".into()).await,
            1,
            "{backend}"
        );
        let runs = "SELECT COUNT(*) FROM sweep_runs WHERE kind = 'apply'".to_string();
        for (name, allowed) in [
            ("viewer", false),
            ("approver", false),
            ("jsm", false),
            ("operator", true),
            ("owner", true),
        ] {
            let before = count(runs.clone()).await;
            let (code, stderr) = run(vec![
                "sweep".into(),
                "apply".into(),
                "--as".into(),
                name.into(),
            ])
            .await;
            let role = if name == "jsm" { "operator" } else { name };
            let requested = format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'plan.apply_requested' AND actor = 'admin:{name}' AND role = '{role}'"
            );
            if allowed {
                assert_eq!(code, 0, "{backend}: {name}: {stderr}");
                assert_eq!(count(requested).await, 1, "{backend}: {name}");
                assert_eq!(count(runs.clone()).await, before + 1, "{backend}: {name}");
            } else {
                assert_eq!(code, 2, "{backend}: {name}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "{backend}: {stderr}");
                if name == "jsm" {
                    assert!(
                        stderr.contains("outside the scope of admin:jsm"),
                        "{stderr}"
                    );
                } else {
                    assert!(stderr.contains("may not operate"), "{stderr}");
                }
                assert_eq!(count(requested).await, 0, "{backend}: {name}");
                assert_eq!(count(runs.clone()).await, before, "{backend}: {name}");
            }
        }
        assert!(count(refused_as("approver")).await >= 1, "{backend}");

        // A restore link gives access back: approver or above, in scope.
        let site = app.state.site().to_string();
        for (name, allowed) in [("viewer", false), ("jsm", false), ("approver", true)] {
            let (code, stderr) = run(vec![
                "link".into(),
                "--account".into(),
                account.clone(),
                "--product".into(),
                "jira-software".into(),
                "--site".into(),
                site.clone(),
                "--as".into(),
                name.into(),
            ])
            .await;
            let issued = format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'link.issued' AND actor = 'admin:{name}'"
            );
            let tokens = "SELECT COUNT(*) FROM link_tokens".to_string();
            if allowed {
                assert_eq!(code, 0, "{backend}: {name}: {stderr}");
                assert_eq!(count(issued).await, 1, "{backend}");
                assert_eq!(
                    count("SELECT COUNT(*) FROM audit_log WHERE action = 'link.issued' AND role = 'approver'".into()).await,
                    1,
                    "{backend}"
                );
            } else {
                assert_eq!(code, 2, "{backend}: {name}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "{backend}: {stderr}");
                assert_eq!(count(issued).await, 0, "{backend}");
                assert_eq!(count(tokens).await, 0, "{backend}: no link was issued");
            }
        }

        // An unknown name is one line and exit 2 too.
        let (code, stderr) = run(vec![
            "sweep".into(),
            "apply".into(),
            "--as".into(),
            "nobody".into(),
        ])
        .await;
        assert_eq!(code, 2, "{backend}: {stderr}");
        assert!(stderr.contains("no admin \"nobody\""), "{stderr}");
    }
}
