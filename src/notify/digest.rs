//! The admin digest: what waits for an admin, what the last run did, how many seats were
//! reclaimed per product, licence alerts, and undelivered email — gathered from the
//! database and put in the outbox once per recipient and period.

use crate::sweep::ApplyReport;
use sqlx::{Any, AnyConnection};

use super::outbox::{Enqueued, Outbox};
use super::templates::{AdminDigest, LicenceAlert, PendingRequest, ReclaimedSeats, RunSummary};
use crate::store::time::from_ms;

/// Most pending requests listed in one digest.
const MAX_PENDING: i64 = 100;

/// `restore_requests`: id, account, product, channel, received, display name, email.
type PendingRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
);

/// Gathers the digest for the period starting at `since_ms` (UTC ms). `product_name` turns
/// a product key into the name users know; `alerts` come from the caller, which knows the
/// licence counts.
pub async fn collect(
    conn: &mut AnyConnection,
    since_ms: i64,
    product_name: &(dyn Fn(&str) -> String + Sync),
    alerts: Vec<LicenceAlert>,
    dashboard_url: Option<String>,
) -> Result<AdminDigest, sqlx::Error> {
    let pending: Vec<PendingRow> = sqlx::query_as::<Any, PendingRow>(
        "SELECT id, account_id, product, channel, created_at, display_name, email \
             FROM restore_requests WHERE status IN ('pending', 'failed') \
             ORDER BY created_at, id LIMIT $1",
    )
    .bind(MAX_PENDING)
    .fetch_all(&mut *conn)
    .await?;
    let pending = pending
        .into_iter()
        .map(
            |(id, account, product, channel, created_at, name, email)| PendingRequest {
                request_id: id,
                display_name: name.or(account).unwrap_or_else(|| "unknown account".into()),
                email,
                product_name: product.as_deref().map(product_name).unwrap_or_default(),
                channel,
                received: from_ms(created_at),
            },
        )
        .collect();

    let last_run: Option<(String, i64, String, String, String)> =
        sqlx::query_as::<Any, (String, i64, String, String, String)>(
            "SELECT id, started_at, mode, status, summary FROM sweep_runs \
             ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
    // Given back in the period: seats with a `restored` journal row since it began.
    let restored = crate::ledger::journal::restored_seats(&mut *conn, since_ms).await?;
    let last_run = match last_run {
        None => None,
        Some((id, started, mode, status, summary)) => {
            // The run summary's one contract; one that does not parse is an error.
            let counts = ApplyReport::parse(&id, &summary)
                .map_err(|error| sqlx::Error::Decode(error.to_string().into()))?;
            Some(RunSummary {
                started: from_ms(started),
                mode,
                status,
                warned: counts.warned,
                removed: counts.removed_users,
                restored,
                failed: counts.failed,
            })
        }
    };

    let reclaimed = crate::ledger::journal::reclaimed_per_product(&mut *conn, since_ms)
        .await?
        .into_iter()
        .map(|(product, seats)| ReclaimedSeats {
            product_name: product_name(&product),
            seats,
        })
        .collect();

    let undelivered: i64 =
        sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM email_outbox WHERE status = 'dead'")
            .fetch_one(&mut *conn)
            .await?;

    Ok(AdminDigest {
        pending,
        last_run,
        reclaimed,
        alerts,
        undelivered: u64::try_from(undelivered).unwrap_or_default(),
        dashboard_url,
        savings: None,
        forecasts: Vec::new(),
    })
}

/// Puts the digest in the outbox for each recipient, once per `period` (e.g. the date):
/// running the digest twice for the same period sends nothing more.
pub async fn enqueue(
    outbox: &Outbox,
    conn: &mut AnyConnection,
    recipients: &[String],
    period: &str,
    digest: &AdminDigest,
) -> Result<Vec<Enqueued>, sqlx::Error> {
    let mut outcomes = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let message = outbox.message(format!("digest:{period}:{recipient}"), recipient, digest);
        outcomes.push(outbox.enqueue_in(conn, message).await?);
    }
    Ok(outcomes)
}

/// One turn of `mail.digest_schedule`: on the replica holding the `digest` lease, the digest
/// of the last day (with licence alerts from the Jira application roles) for each of
/// `mail.admin_recipients`, once per day. Returns how many messages were queued.
pub async fn scheduled_turn(
    state: &crate::app::AppState,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<usize, sqlx::Error> {
    let recipients = &state.config.mail.admin_recipients;
    if recipients.is_empty() {
        return Ok(0);
    }
    let holder = format!("digest-{}", std::process::id());
    let lease_ttl = std::time::Duration::from_secs(600);
    if !crate::store::lease::acquire(&state.db, "digest", &holder, lease_ttl).await? {
        return Ok(0);
    }
    let alerts = licence_alerts(state).await;
    let since = (at - chrono::Duration::days(1)).timestamp_millis();
    let dashboard = Some(format!("{}/admin", state.config.public_url()));
    let product_name = |key: &str| crate::restore::reply::product_name(Some(key));
    let mut tx = state.db.pool().begin().await?;
    let mut digest = collect(&mut tx, since, &product_name, alerts, dashboard).await?;
    add_money(state, &mut digest).await?;
    let period = at.format("%Y-%m-%d").to_string();
    let queued = enqueue(&state.notify.outbox, &mut tx, recipients, &period, &digest).await?;
    tx.commit().await?;
    crate::store::lease::release(&state.db, "digest", &holder).await?;
    Ok(queued
        .iter()
        .filter(|e| matches!(e, Enqueued::Queued(_)))
        .count())
}

/// Adds the savings to date (when prices are configured) and the seat forecast at the
/// renewal (when one is configured), as the overview shows them.
pub async fn add_money(
    state: &crate::app::AppState,
    digest: &mut AdminDigest,
) -> Result<(), sqlx::Error> {
    let savings = crate::billing::savings(state).await?;
    if savings.currency.is_some() {
        digest.savings = Some(super::templates::DigestSavings {
            saved: savings.label(savings.saved()),
            run_rate: savings.label(savings.run_rate()),
            free_now: savings.free_now(),
        });
    }
    digest.forecasts = crate::billing::forecasts(state)
        .await?
        .into_iter()
        .map(|f| super::templates::DigestForecast {
            product_name: crate::restore::reply::product_name(Some(&f.product)),
            site: f.site,
            current: f.current,
            at_renewal: f.at_renewal,
            renewal: f.renewal,
        })
        .collect();
    Ok(())
}

/// Products whose used seats passed `sweep.licence_alert_percent` of their licence,
/// from the Jira application roles (products without seat counts are skipped).
/// Every site's: with several sites, each alert names its site.
pub async fn licence_alerts(state: &crate::app::AppState) -> Vec<LicenceAlert> {
    let mut alerts = Vec::new();
    for site in state.each_site() {
        let mut found = site_licence_alerts(&site).await;
        if state.is_multi_site() {
            for alert in &mut found {
                alert.product_name = format!("{} on {}", alert.product_name, site.site());
            }
        }
        alerts.extend(found);
    }
    alerts
}

async fn site_licence_alerts(state: &crate::app::AppState) -> Vec<LicenceAlert> {
    let Some(jira) = state.atlassian.jira.as_ref() else {
        return Vec::new();
    };
    let threshold = u64::from(state.config.sweep.licence_alert_percent);
    let mut alerts = Vec::new();
    for product in state.config.sweep.product_keys() {
        if product.jira_application_key().is_none() {
            continue;
        }
        let role = match jira.application_role(&product).await {
            Ok(role) => role,
            Err(error) => {
                tracing::warn!(product = product.as_str(), %error, "no seat counts for the digest");
                continue;
            }
        };
        let (Some(seats), Some(used)) = (role.number_of_seats, role.user_count) else {
            continue;
        };
        let (Ok(seats), Ok(used)) = (u64::try_from(seats), u64::try_from(used)) else {
            continue;
        };
        if !role.has_unlimited_seats && seats > 0 && used * 100 >= seats * threshold {
            alerts.push(LicenceAlert {
                product_name: crate::restore::reply::product_name(Some(product.as_str())),
                used,
                limit: seats,
            });
        }
    }
    alerts
}
