//! Notifications and signed links: what users and admins hear from reseat, and the links in
//! those emails that give access back.
//!
//! - [`templates`]: the emails (askama, text + HTML), branded from `[mail]`;
//! - [`outbox`]: messages written in the caller's transaction, sent by the `mail.send` job,
//!   at most one per dedupe key, undeliverable ones kept for admins;
//! - [`transport`]: SMTP through lettre, or `.eml` files for the demo and tests;
//! - [`links`]: HMAC-signed, expiring, single-use `/restore/{token}` and `/keep/{token}`
//!   links with a rotating key ring from `[links]`.
//!
//! See `docs/notifications.md`.

pub mod config;
pub mod digest;
pub mod links;
pub mod outbox;
pub mod templates;
pub mod transport;

pub use config::{LinkConfig, MailConfig, SmtpConfig, SmtpSecurity, TransportKind};
pub use links::{IssuedLink, KeyRing, LinkError, LinkSigner, Purpose, TokenClaims, TokenRejection};
pub use outbox::{
    Enqueued, Message, Outbox, OutboxEntry, OutboxId, OutboxStats, SEND_JOB, SendMail,
};
pub use templates::{Branding, Email, Rendered};
pub use transport::{Headers, Mailer, SendError};

use crate::config::{Config, ConfigError};
use crate::queue::Queue;

/// The notification services the application holds in its state.
#[derive(Clone, Debug)]
pub struct Notify {
    pub outbox: Outbox,
    pub links: LinkSigner,
    /// The `mail.send` handler the worker runs.
    pub sender: SendMail,
}

impl Notify {
    /// Builds the outbox, link signer and sender from a validated configuration.
    pub fn from_config(config: &Config, queue: Queue) -> Result<Notify, ConfigError> {
        let clock = queue.db().clock().clone();
        let outbox = Outbox::from_config(queue, &config.mail);
        let sender = SendMail::new(
            outbox.clone(),
            Mailer::from_config(&config.mail)?,
            Headers::from_config(&config.mail)?,
        );
        Ok(Notify {
            outbox,
            links: LinkSigner::from_config(&config.links, &config.public_url()).with_clock(clock),
            sender,
        })
    }
}
