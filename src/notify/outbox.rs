//! The outbox: a message is rendered and written to `email_outbox` in the same transaction
//! as the event that causes it, unique by a dedupe key (e.g. `warning:<account>:<product>:<run>`),
//! together with a `mail.send` job. The job sends it with retries and backoff; a message
//! that keeps failing, or that can never be sent (invalid address, refused for good,
//! template error), is marked `dead` and listed for admins.
//!
//! Delivery is at least once: the row is marked `sent` only after the SMTP server accepted
//! the message, so a crash between the two sends it again (with the same `Message-ID`, so
//! the receiving side can recognise the copy). A second enqueue with the same dedupe key
//! never creates a second message.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, FromRow};

use super::config::MailConfig;
use super::templates::{Branding, Email, Rendered};
use super::transport::{Envelope, Headers, Mailer, SendError};
use crate::queue::{HandlerFuture, Job, JobError, JobHandler, NewJob, Queue};

/// The job kind that sends one outbox message.
pub const SEND_JOB: &str = "mail.send";

/// The id of a row in `email_outbox`.
pub type OutboxId = i64;

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct Message {
    /// At most one message is ever sent per key.
    pub dedupe_key: String,
    /// The recipient, `user@example.com` or `Name <user@example.com>`.
    pub to: String,
    pub account_id: Option<String>,
    pub product: Option<String>,
    body: Result<Rendered, (&'static str, String)>,
}

impl Message {
    /// Renders `email` for `to`. A template error does not fail the caller's transaction:
    /// the message is kept as undeliverable, with the error, for admins to see.
    pub fn render<E: Email>(
        dedupe_key: impl Into<String>,
        to: impl Into<String>,
        email: &E,
        brand: &Branding,
    ) -> Message {
        Message {
            dedupe_key: dedupe_key.into(),
            to: to.into(),
            account_id: None,
            product: None,
            body: email
                .render(brand)
                .map_err(|error| (E::NAME, format!("template {} failed: {error}", E::NAME))),
        }
    }

    /// A message rendered already.
    pub fn rendered(
        dedupe_key: impl Into<String>,
        to: impl Into<String>,
        rendered: Rendered,
    ) -> Message {
        Message {
            dedupe_key: dedupe_key.into(),
            to: to.into(),
            account_id: None,
            product: None,
            body: Ok(rendered),
        }
    }

    /// Records which account and product the message is about (for the user's timeline).
    pub fn about(mut self, account_id: impl Into<String>, product: impl Into<String>) -> Message {
        self.account_id = Some(account_id.into());
        self.product = Some(product.into());
        self
    }
}

/// What [`Outbox::enqueue_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored and queued for sending.
    Queued(OutboxId),
    /// A message with this dedupe key exists already; nothing was added.
    Duplicate(OutboxId),
    /// Stored as `dead`: it can never be sent as it is (invalid address, template error).
    Undeliverable(OutboxId),
}

impl Enqueued {
    pub fn id(self) -> OutboxId {
        match self {
            Enqueued::Queued(id) | Enqueued::Duplicate(id) | Enqueued::Undeliverable(id) => id,
        }
    }
}

/// A row of `email_outbox`.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub dedupe_key: String,
    pub template: String,
    pub to_addr: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// `queued`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub account_id: Option<String>,
    pub product: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

const COLUMNS: &str = "id, dedupe_key, template, to_addr, subject, text_body, html_body, status, \
     attempts, last_error, message_id, account_id, product, created_at, updated_at, sent_at";

/// Message counts by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    pub queued: i64,
    pub sent: i64,
    pub dead: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SendPayload {
    outbox_id: OutboxId,
}

/// The outbox over the shared database and queue.
#[derive(Clone, Debug)]
pub struct Outbox {
    queue: Queue,
    brand: Arc<Branding>,
    /// The right-hand side of `Message-ID`s: the sender's domain.
    domain: Arc<str>,
}

impl Outbox {
    pub fn new(queue: Queue, brand: Branding) -> Outbox {
        Outbox {
            queue,
            brand: Arc::new(brand),
            domain: "reseat.invalid".into(),
        }
    }

    /// The outbox with branding and `Message-ID` domain from a validated `[mail]` section.
    pub fn from_config(queue: Queue, mail: &MailConfig) -> Outbox {
        let domain = mail
            .from_mailbox()
            .map(|mailbox| mailbox.email.domain().to_string())
            .unwrap_or_else(|_| "reseat.invalid".into());
        Outbox {
            domain: domain.into(),
            ..Outbox::new(queue, Branding::from_config(mail))
        }
    }

    /// Organisation, support contact and portal for rendering.
    pub fn brand(&self) -> &Branding {
        &self.brand
    }

    /// Renders `email` with this outbox's branding.
    pub fn message<E: Email>(
        &self,
        dedupe_key: impl Into<String>,
        to: impl Into<String>,
        email: &E,
    ) -> Message {
        Message::render(dedupe_key, to, email, &self.brand)
    }

    /// Stores the message and its `mail.send` job in the caller's transaction. A message
    /// whose dedupe key exists already is not stored again (and not sent again).
    #[tracing::instrument(skip_all, fields(dedupe_key = %message.dedupe_key))]
    pub async fn enqueue_in(
        &self,
        conn: &mut AnyConnection,
        message: Message,
    ) -> Result<Enqueued, sqlx::Error> {
        let now = self.queue.db().now_ms();
        let address_ok = message.to.parse::<lettre::message::Mailbox>().is_ok();
        let (template, subject, text, html, problem) = match message.body {
            Ok(rendered) => {
                let problem =
                    (!address_ok).then(|| format!("invalid recipient address {:?}", message.to));
                (
                    rendered.template,
                    rendered.subject,
                    rendered.text,
                    rendered.html,
                    problem,
                )
            }
            Err((template, error)) => (
                template,
                String::new(),
                String::new(),
                String::new(),
                Some(error),
            ),
        };
        let status = if problem.is_some() { "dead" } else { "queued" };
        let message_id = format!("<{}@{}>", uuid::Uuid::now_v7().simple(), self.domain);
        let inserted: Option<i64> = sqlx::query_scalar::<Any, i64>(
            "INSERT INTO email_outbox (dedupe_key, template, to_addr, subject, text_body, html_body, \
             status, attempts, last_error, message_id, account_id, product, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&message.dedupe_key)
        .bind(template)
        .bind(&message.to)
        .bind(&subject)
        .bind(&text)
        .bind(&html)
        .bind(status)
        .bind(problem.as_deref())
        .bind(&message_id)
        .bind(message.account_id.as_deref())
        .bind(message.product.as_deref())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = inserted else {
            let id =
                sqlx::query_scalar::<Any, i64>("SELECT id FROM email_outbox WHERE dedupe_key = $1")
                    .bind(&message.dedupe_key)
                    .fetch_one(&mut *conn)
                    .await?;
            return Ok(Enqueued::Duplicate(id));
        };
        if let Some(problem) = problem {
            tracing::warn!(outbox_id = id, template, %problem, "message cannot be sent; kept for admins");
            return Ok(Enqueued::Undeliverable(id));
        }
        self.queue.enqueue_in(conn, send_job(id)).await?;
        Ok(Enqueued::Queued(id))
    }

    /// Like [`Outbox::enqueue_in`] in a transaction of its own.
    pub async fn enqueue(&self, message: Message) -> Result<Enqueued, sqlx::Error> {
        let mut tx = self.queue.db().pool().begin().await?;
        let outcome = self.enqueue_in(&mut tx, message).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn get(&self, id: OutboxId) -> Result<Option<OutboxEntry>, sqlx::Error> {
        sqlx::query_as::<Any, OutboxEntry>(&format!(
            "SELECT {COLUMNS} FROM email_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.queue.db().pool())
        .await
    }

    /// Messages that could not be delivered, newest first: for the dashboard and digest.
    pub async fn undelivered(&self, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        sqlx::query_as::<Any, OutboxEntry>(&format!(
            "SELECT {COLUMNS} FROM email_outbox WHERE status = 'dead' \
             ORDER BY updated_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.queue.db().pool())
        .await
    }

    /// Puts an undelivered message back in the queue (after an admin fixed the cause).
    /// False when it was not undelivered.
    pub async fn retry(&self, id: OutboxId) -> Result<bool, sqlx::Error> {
        let now = self.queue.db().now_ms();
        let mut tx = self.queue.db().pool().begin().await?;
        let updated = sqlx::query::<Any>(
            "UPDATE email_outbox SET status = 'queued', updated_at = $1 \
             WHERE id = $2 AND status = 'dead' AND subject <> ''",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        let revived = sqlx::query::<Any>(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 \
             WHERE dedupe_key = $2 AND state IN ('dead', 'done')",
        )
        .bind(now)
        .bind(send_job_key(id))
        .execute(&mut *tx)
        .await?;
        if revived.rows_affected() == 0 {
            self.queue.enqueue_in(&mut tx, send_job(id)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn stats(&self) -> Result<OutboxStats, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM email_outbox GROUP BY status")
                .fetch_all(self.queue.db().pool())
                .await?;
        let mut stats = OutboxStats::default();
        for (status, count) in rows {
            match status.as_str() {
                "queued" => stats.queued = count,
                "sent" => stats.sent = count,
                "dead" => stats.dead = count,
                _ => {}
            }
        }
        Ok(stats)
    }

    async fn mark(
        &self,
        id: OutboxId,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let now = self.queue.db().now_ms();
        let sent_at = (status == "sent").then_some(now);
        sqlx::query::<Any>(
            "UPDATE email_outbox SET status = $1, last_error = $2, updated_at = $3, \
             sent_at = COALESCE($4, sent_at) WHERE id = $5 AND status = 'queued'",
        )
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(sent_at)
        .bind(id)
        .execute(self.queue.db().pool())
        .await?;
        Ok(())
    }
}

fn send_job_key(id: OutboxId) -> String {
    format!("mail:{id}")
}

fn send_job(id: OutboxId) -> NewJob {
    NewJob::new(SEND_JOB, serde_json::json!(SendPayload { outbox_id: id }))
        .dedupe_key(send_job_key(id))
}

/// The `mail.send` job handler: loads the row, skips it if already sent, sends, marks it sent.
#[derive(Clone, Debug)]
pub struct SendMail {
    outbox: Outbox,
    mailer: Mailer,
    headers: Headers,
}

impl SendMail {
    pub fn new(outbox: Outbox, mailer: Mailer, headers: Headers) -> SendMail {
        SendMail {
            outbox,
            mailer,
            headers,
        }
    }

    #[tracing::instrument(skip_all, fields(job_id = job.id, outbox_id))]
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let payload: SendPayload = job
            .payload()
            .map_err(|error| JobError::Permanent(format!("bad mail.send payload: {error}")))?;
        tracing::Span::current().record("outbox_id", payload.outbox_id);
        let retry = |error: sqlx::Error| JobError::retry(format!("database: {error}"));
        let Some(entry) = self.outbox.get(payload.outbox_id).await.map_err(retry)? else {
            return Err(JobError::Permanent(format!(
                "outbox message {} does not exist",
                payload.outbox_id
            )));
        };
        if entry.status != "queued" {
            tracing::debug!(status = %entry.status, "message not queued any more; nothing to do");
            return Ok(());
        }
        sqlx::query::<Any>("UPDATE email_outbox SET attempts = attempts + 1 WHERE id = $1")
            .bind(entry.id)
            .execute(self.outbox.queue.db().pool())
            .await
            .map_err(retry)?;
        let message_id = entry
            .message_id
            .clone()
            .unwrap_or_else(|| format!("<outbox-{}@reseat.invalid>", entry.id));
        let sent = match self.headers.build(
            &entry.to_addr,
            &entry.subject,
            &message_id,
            entry.text_body.clone(),
            entry.html_body.clone(),
        ) {
            Ok(message) => {
                let envelope = Envelope {
                    file_stem: format!("{:010}-{}", entry.id, entry.template),
                    message,
                };
                self.mailer.send(&envelope).await
            }
            Err(error) => Err(error),
        };
        match sent {
            Ok(()) => {
                self.outbox
                    .mark(entry.id, "sent", None)
                    .await
                    .map_err(retry)?;
                tracing::info!(template = %entry.template, "email sent");
                Ok(())
            }
            Err(SendError::Permanent(error)) => {
                self.outbox
                    .mark(entry.id, "dead", Some(&error))
                    .await
                    .map_err(retry)?;
                Err(JobError::Permanent(error))
            }
            Err(SendError::Transient(error)) => {
                let last = job.attempts >= job.max_attempts;
                if last {
                    self.outbox.mark(entry.id, "dead", Some(&error)).await
                } else {
                    sqlx::query::<Any>(
                        "UPDATE email_outbox SET last_error = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(&error)
                    .bind(self.outbox.queue.db().now_ms())
                    .bind(entry.id)
                    .execute(self.outbox.queue.db().pool())
                    .await
                    .map(|_| ())
                }
                .map_err(retry)?;
                Err(JobError::retry(error))
            }
        }
    }
}

impl JobHandler for SendMail {
    fn handle<'a>(&'a self, job: &'a Job) -> HandlerFuture<'a> {
        Box::pin(self.run(job))
    }
}
