//! The `[mail]` and `[links]` sections of the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};

/// How messages leave reseat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// One `.eml` file per message in `mail.outbox_dir` (demo, tests).
    #[default]
    File,
    /// An SMTP server (`[mail.smtp]`).
    Smtp,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network (usually port 25).
    None,
}

/// `[mail]`: who emails come from, what they say about the organisation, and how they leave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `smtp` for production, `file` for the demo and tests.
    pub transport: TransportKind,
    /// Directory the `file` transport writes one `.eml` per message to (created if missing).
    pub outbox_dir: PathBuf,
    /// The file transport sends nothing; it is refused when `server.public_url` is a
    /// non-local address unless this is `true`.
    pub allow_file_transport: bool,
    /// The `From` of every message, e.g. `"IT Access <reseat@example.com>"`.
    pub from: String,
    /// The `Reply-To` of every message, e.g. the service desk's address.
    pub reply_to: Option<String>,
    /// The organisation's name as users know it, shown in every message.
    pub organisation: String,
    /// Who users contact with questions (an address or a sentence), shown in every message.
    pub support_contact: Option<String>,
    /// The service portal where users can ask for access (JSM), linked from removal notices.
    pub portal_url: Option<String>,
    /// Who receives the admin digest and "request waiting for approval" notices.
    pub admin_recipients: Vec<String>,
    /// When `serve` sends the admin digest, as a cron expression in UTC; none: never.
    pub digest_schedule: Option<String>,
    /// The SMTP server, used when `transport = "smtp"`.
    pub smtp: SmtpConfig,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: TransportKind::File,
            outbox_dir: PathBuf::from("outbox"),
            allow_file_transport: false,
            from: "reseat <reseat@localhost>".into(),
            reply_to: None,
            organisation: "Your organisation".into(),
            support_contact: None,
            portal_url: None,
            admin_recipients: Vec::new(),
            digest_schedule: Some("0 7 * * *".into()),
            smtp: SmtpConfig::default(),
        }
    }
}

/// `[mail.smtp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The SMTP server's host name.
    pub host: String,
    /// The port: usually 587 with `starttls`, 465 with `tls`, 25 for a local relay.
    pub port: u16,
    /// `starttls`, `tls`, or `none` (a local relay only).
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH; no authentication when unset.
    pub username: Option<String>,
    /// Password for SMTP AUTH (or `password_file`).
    pub password: Option<Secret>,
    /// How long one SMTP command may take before the attempt fails and is retried.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// `[links]`: the keys that sign restore and keep links, and how long links live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    /// The id of the key in `links.keys` that signs new links; the others only verify.
    pub signing_key: Option<String>,
    /// The key ring: key id → secret of at least 32 characters (`openssl rand -base64 48`).
    /// Keep a retired key here until the links it signed have expired.
    pub keys: BTreeMap<String, Secret>,
    /// How long a restore link works.
    #[serde(with = "crate::config::duration")]
    pub restore_ttl: Duration,
    /// How long a "keep my access" link works when the caller gives no removal date.
    #[serde(with = "crate::config::duration")]
    pub keep_ttl: Duration,
    /// The site `reseat link` binds links to when `--site` is not given.
    pub site: Option<String>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            signing_key: None,
            keys: BTreeMap::new(),
            restore_ttl: Duration::from_secs(30 * 86_400),
            keep_ttl: Duration::from_secs(14 * 86_400),
            site: None,
        }
    }
}

/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A key id: what goes in a token before the signature, so keep it short and plain.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl MailConfig {
    /// Checks what types alone cannot; `public_url` is `server.public_url`.
    pub fn validate(&self, public_url: Option<&str>) -> Result<(), ConfigError> {
        parse_mailbox("mail.from", &self.from)?;
        if let Some(reply_to) = &self.reply_to {
            parse_mailbox("mail.reply_to", reply_to)?;
        }
        for (n, admin) in self.admin_recipients.iter().enumerate() {
            parse_mailbox(&format!("mail.admin_recipients[{n}]"), admin)?;
        }
        if let Some(expression) = &self.digest_schedule {
            crate::schedule::parse(expression)
                .map_err(|problem| ConfigError::key("mail.digest_schedule", problem))?;
        }
        if self.organisation.trim().is_empty() {
            return Err(ConfigError::key("mail.organisation", "must not be empty"));
        }
        if let Some(portal) = &self.portal_url {
            match url::Url::parse(portal) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::key(
                        "mail.portal_url",
                        format!(
                            "expected an http(s) URL like \"https://example.atlassian.net/servicedesk/customer/portal/1\", got {portal:?}"
                        ),
                    ));
                }
            }
        }
        match self.transport {
            TransportKind::File => {
                if !self.allow_file_transport && public_url.is_some_and(|url| !is_local_url(url)) {
                    return Err(ConfigError::key(
                        "mail.transport",
                        "the file transport sends no email, and server.public_url is not a local address; \
                         set mail.transport = \"smtp\" with [mail.smtp], or mail.allow_file_transport = true",
                    ));
                }
                if self.outbox_dir.as_os_str().is_empty() {
                    return Err(ConfigError::key("mail.outbox_dir", "must not be empty"));
                }
            }
            TransportKind::Smtp => {
                if self.smtp.host.trim().is_empty() {
                    return Err(ConfigError::key(
                        "mail.smtp.host",
                        "is required when mail.transport = \"smtp\"",
                    ));
                }
                if self.smtp.port == 0 {
                    return Err(ConfigError::key("mail.smtp.port", "must be 1-65535"));
                }
                match (&self.smtp.username, &self.smtp.password) {
                    (Some(_), None) => {
                        return Err(ConfigError::key(
                            "mail.smtp.password",
                            "is required when mail.smtp.username is set (or use password_file)",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(ConfigError::key(
                            "mail.smtp.username",
                            "is required when mail.smtp.password is set",
                        ));
                    }
                    _ => {}
                }
                if self.smtp.timeout.is_zero() {
                    return Err(ConfigError::key("mail.smtp.timeout", "must be more than 0"));
                }
            }
        }
        Ok(())
    }

    /// The sender mailbox (validated by [`MailConfig::validate`]).
    pub fn from_mailbox(&self) -> Result<lettre::message::Mailbox, ConfigError> {
        parse_mailbox("mail.from", &self.from)
    }
}

impl LinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (id, secret) in &self.keys {
            if !valid_key_id(id) {
                return Err(ConfigError::key(
                    format!("links.keys.{id}"),
                    "a key id is 1-32 letters, digits, '-' or '_'",
                ));
            }
            if secret.expose().len() < MIN_KEY_LEN {
                return Err(ConfigError::key(
                    format!("links.keys.{id}"),
                    format!(
                        "a signing key needs at least {MIN_KEY_LEN} characters; generate one with `openssl rand -base64 48`"
                    ),
                ));
            }
        }
        match &self.signing_key {
            Some(id) if !self.keys.contains_key(id) => {
                return Err(ConfigError::key(
                    "links.signing_key",
                    format!(
                        "no key {id:?} in links.keys; add links.keys.{id} or name an existing key"
                    ),
                ));
            }
            None if !self.keys.is_empty() => {
                return Err(ConfigError::key(
                    "links.signing_key",
                    "is required when links.keys is set: name the key that signs new links",
                ));
            }
            _ => {}
        }
        if self.restore_ttl.is_zero() {
            return Err(ConfigError::key("links.restore_ttl", "must be more than 0"));
        }
        if self.keep_ttl.is_zero() {
            return Err(ConfigError::key("links.keep_ttl", "must be more than 0"));
        }
        Ok(())
    }
}

fn parse_mailbox(key: &str, value: &str) -> Result<lettre::message::Mailbox, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::key(
            key,
            format!("expected an address like \"Name <user@example.com>\", got {value:?}"),
        )
    })
}

/// True for URLs of this machine (the demo, tests): there a file outbox is the point.
fn is_local_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host() {
            Some(url::Host::Domain(host)) => host == "localhost" || host.ends_with(".localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_transport_is_refused_for_a_public_install() {
        let mail = MailConfig::default();
        assert!(mail.validate(None).is_ok());
        assert!(mail.validate(Some("http://127.0.0.1:8080")).is_ok());
        assert!(mail.validate(Some("http://localhost:8080")).is_ok());
        let error = mail
            .validate(Some("https://reseat.example.com"))
            .unwrap_err();
        assert_eq!(error.place, "mail.transport");
        let allowed = MailConfig {
            allow_file_transport: true,
            ..MailConfig::default()
        };
        assert!(allowed.validate(Some("https://reseat.example.com")).is_ok());
    }

    #[test]
    fn smtp_needs_a_host_and_both_credentials() {
        let mut mail = MailConfig {
            transport: TransportKind::Smtp,
            ..MailConfig::default()
        };
        assert_eq!(mail.validate(None).unwrap_err().place, "mail.smtp.host");
        mail.smtp.host = "smtp.example.com".into();
        mail.smtp.username = Some("reseat".into());
        assert_eq!(mail.validate(None).unwrap_err().place, "mail.smtp.password");
        mail.smtp.password = Some(Secret::new("pw"));
        assert!(mail.validate(Some("https://reseat.example.com")).is_ok());
    }

    #[test]
    fn addresses_are_checked() {
        let mail = MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        };
        assert_eq!(mail.validate(None).unwrap_err().place, "mail.from");
        let mail = MailConfig {
            admin_recipients: vec!["ok@example.com".into(), "nope".into()],
            ..MailConfig::default()
        };
        assert_eq!(
            mail.validate(None).unwrap_err().place,
            "mail.admin_recipients[1]"
        );
    }

    #[test]
    fn the_key_ring_is_checked() {
        let mut links = LinkConfig::default();
        assert!(links.validate().is_ok());
        links.keys.insert("k1".into(), Secret::new("short"));
        assert_eq!(links.validate().unwrap_err().place, "links.keys.k1");
        links.keys.insert("k1".into(), Secret::new("x".repeat(32)));
        assert_eq!(links.validate().unwrap_err().place, "links.signing_key");
        links.signing_key = Some("k2".into());
        assert_eq!(links.validate().unwrap_err().place, "links.signing_key");
        links.signing_key = Some("k1".into());
        assert!(links.validate().is_ok());
        links
            .keys
            .insert("bad.id".into(), Secret::new("x".repeat(32)));
        assert_eq!(links.validate().unwrap_err().place, "links.keys.bad.id");
    }
}
