//! Where messages go: an SMTP server through lettre, or a directory of `.eml` files.
//!
//! The file transport names each file after the outbox row (`<id>-<template>.eml`) and
//! writes it atomically (temporary file, then rename), so a message sent again after a
//! crash replaces its file instead of adding a second one.

use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{MailConfig, SmtpSecurity, TransportKind};
use crate::config::ConfigError;

/// Why a send failed, as far as retrying is concerned.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server is down, slow, or answered 4xx: try again later.
    #[error("{0}")]
    Transient(String),
    /// The server refused the message for good (5xx), or it cannot be built.
    #[error("{0}")]
    Permanent(String),
}

/// A message ready to send, with the headers from configuration.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Names the file in the file transport.
    pub file_stem: String,
    pub message: lettre::Message,
}

/// Everything needed to build a message from an outbox row.
#[derive(Debug, Clone)]
pub struct Headers {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

impl Headers {
    pub fn from_config(mail: &MailConfig) -> Result<Headers, ConfigError> {
        let reply_to = match &mail.reply_to {
            Some(reply_to) => Some(reply_to.parse().map_err(|_| {
                ConfigError::key(
                    "mail.reply_to",
                    format!(
                        "expected an address like \"Name <user@example.com>\", got {reply_to:?}"
                    ),
                )
            })?),
            None => None,
        };
        Ok(Headers {
            from: mail.from_mailbox()?,
            reply_to,
        })
    }

    /// A multipart/alternative message (plain text first, then HTML).
    pub fn build(
        &self,
        to: &str,
        subject: &str,
        message_id: &str,
        text: String,
        html: String,
    ) -> Result<lettre::Message, SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| SendError::Permanent(format!("invalid recipient address {to:?}")))?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id.to_string()))
            // RFC 3834: out-of-office replies should not answer this.
            .raw_header(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|error| SendError::Permanent(format!("cannot build the message: {error}")))
    }
}

/// The configured transport.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::File(dir) => write!(f, "Mailer::File({})", dir.display()),
        }
    }
}

impl Mailer {
    /// The transport `[mail]` asks for. Connects to nothing yet.
    pub fn from_config(mail: &MailConfig) -> Result<Mailer, ConfigError> {
        match mail.transport {
            TransportKind::File => Ok(Mailer::File(mail.outbox_dir.clone())),
            TransportKind::Smtp => {
                let smtp = &mail.smtp;
                let tls_error = |error: lettre::transport::smtp::Error| {
                    ConfigError::key("mail.smtp.host", format!("cannot set up TLS: {error}"))
                };
                let builder = match smtp.security {
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                            .map_err(tls_error)?
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .map_err(tls_error)?,
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                };
                let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                Ok(Mailer::Smtp(builder.build()))
            }
        }
    }

    /// Hands the message over: accepted by the SMTP server, or written to the outbox directory.
    pub async fn send(&self, envelope: &Envelope) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(transport) => match transport.send(envelope.message.clone()).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(format!(
                    "the SMTP server refused the message: {error}"
                ))),
                Err(error) => Err(SendError::Transient(format!("SMTP: {error}"))),
            },
            Mailer::File(dir) => write_eml(dir, &envelope.file_stem, &envelope.message.formatted())
                .await
                .map_err(|error| {
                    SendError::Transient(format!(
                        "cannot write to the outbox directory {}: {error}",
                        dir.display()
                    ))
                }),
        }
    }
}

async fn write_eml(dir: &Path, stem: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{stem}.eml"));
    let partial = dir.join(format!(".{stem}.eml.partial"));
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::rename(&partial, &path).await
}
