//! Deliveries of the Teams, Okta and sign-in hooks, remembered by the sender's own id (the
//! Teams message id, Okta's `eventId`, the Standard Webhooks `webhook-id`): a delivery is
//! processed once, and a replay is refused before it changes anything.

use sqlx::AnyConnection;

/// Records that `channel` received delivery `id`, in the caller's transaction; false when it
/// was received before (a replay).
pub async fn first_time_in(
    conn: &mut AnyConnection,
    now: i64,
    channel: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    // `ON CONFLICT DO NOTHING` keeps a PostgreSQL transaction usable on a replay.
    let done = sqlx::query(
        "INSERT INTO hook_deliveries (channel, delivery_id, received_at) VALUES ($1, $2, $3) \
         ON CONFLICT (channel, delivery_id) DO NOTHING",
    )
    .bind(channel)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A sender's delivery id, checked for shape: 1 to 200 printable characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 200 && !id.chars().any(char::is_control)
}
