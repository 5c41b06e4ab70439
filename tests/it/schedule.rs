//! The scheduled sweep: it runs on the replica that holds the lease, and only there.

use chrono::{TimeZone, Utc};
use reseat::app::AppState;
use reseat::sim::SimConfig;
use reseat::store::lease;
use reseat::sweep::schedule::{Scheduler, Turn};

use crate::support::TestDb;

#[tokio::test]
async fn only_the_replica_holding_the_lease_sweeps() {
    for db in TestDb::all().await {
        let sim = reseat::sim::spawn(SimConfig {
            users: 80,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = reseat::demo::config_for(&sim, dir.path());
        config.database.url = db.url.clone();
        config.sweep.mode = reseat::sweep::config::Mode::DryRun;
        config.sweep.schedule = Some("0 3 * * *".into());
        config.validate().unwrap();
        let state = AppState::open(config).await.unwrap();
        let a = Scheduler::new(state.clone(), "replica-a").expect("a schedule is configured");
        let b = Scheduler::new(state.clone(), "replica-b").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        assert_eq!(
            a.next_after(from),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap())
        );

        // Replica b is mid-run: a stands aside and plans nothing.
        assert!(
            lease::acquire(
                &state.db,
                "sweep",
                "replica-b",
                std::time::Duration::from_secs(3600)
            )
            .await
            .unwrap()
        );
        assert!(
            matches!(a.run_once(Utc::now()).await.unwrap(), Turn::NotLeader),
            "{}",
            db.backend_name()
        );
        let plans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plans")
            .fetch_one(state.db.pool())
            .await
            .unwrap();
        assert_eq!(plans, 0);
        lease::release(&state.db, "sweep", "replica-b")
            .await
            .unwrap();

        let Turn::Ran(report) = a.run_once(Utc::now()).await.unwrap() else {
            panic!("a holds the lease now");
        };
        assert!(report.dry_run);
        let plans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plans")
            .fetch_one(state.db.pool())
            .await
            .unwrap();
        assert_eq!(plans, 1);
        // The lease was given back: b can run the next one.
        assert!(matches!(
            b.run_once(Utc::now()).await.unwrap(),
            Turn::Ran(_)
        ));
        let runs: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'sweep.scheduled_run'",
        )
        .fetch_one(state.db.pool())
        .await
        .unwrap();
        assert_eq!(runs, 2);
        sim.shutdown().await;
    }
}

#[test]
fn a_bad_schedule_names_the_key() {
    let mut config = reseat::config::Config::default();
    config.sweep.schedule = Some("every night".into());
    let error = config.validate().unwrap_err();
    assert_eq!(error.place, "sweep.schedule");
}
