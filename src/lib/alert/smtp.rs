//! SMTP settings (`[smtp]` in `akkaflow.toml`) and the lettre transport built from them.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::channel::{Channel, SendError};
use crate::error::{Error, Result};
use crate::store::AlertRow;

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on loopback).
    None,
    /// Plain connect, then STARTTLS, required (refuses to send if the server does not offer it).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The resolved SMTP settings. `Debug` never shows the password.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// Extra PEM root certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpSettings {
    pub fn from_mailbox(&self) -> Result<Mailbox> {
        self.from.parse().map_err(|e| {
            Error::Config(format!(
                "[smtp] from `{}` is not an address: {e}",
                self.from
            ))
        })
    }

    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(self.tls_parameters()?),
            TlsMode::Tls => Tls::Wrapper(self.tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(user) = &self.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                self.password.clone().unwrap_or_default(),
            ));
        }
        Ok(builder.build())
    }

    fn tls_parameters(&self) -> Result<TlsParameters> {
        let mut b = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| Error::Io {
                context: format!("reading [smtp] ca_file {}", path.display()),
                source: e,
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "[smtp] ca_file {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            b = b.add_root_certificate(cert);
        }
        b.build()
            .map_err(|e| Error::Config(format!("[smtp] TLS settings: {e}")))
    }
}

/// Mail through `[smtp]`: to each alert's receivers, or to an email channel's fixed addresses.
pub struct MailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// An email channel's `mailto:` addresses; `None`: the alert's own recipients.
    to: Option<String>,
}

impl MailChannel {
    pub fn new(smtp: &SmtpSettings, mailto: Option<&str>) -> Result<Self> {
        Ok(MailChannel {
            transport: smtp.transport()?,
            from: smtp.from_mailbox()?,
            to: mailto.map(|m| m.trim_start_matches("mailto:").to_string()),
        })
    }
}

#[async_trait]
impl Channel for MailChannel {
    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(alert.subject.clone());
        let recipients = match &self.to {
            Some(to) => super::merge_recipients([to.as_str()]),
            None => alert
                .recipient_list()
                .into_iter()
                .map(str::to_string)
                .collect(),
        };
        if recipients.is_empty() {
            return Err(SendError::Permanent("the alert has no recipients".into()));
        }
        for r in recipients {
            let mailbox: Mailbox = r
                .parse()
                .map_err(|e| SendError::Permanent(format!("recipient `{r}`: {e}")))?;
            builder = builder.to(mailbox);
        }
        let built = if alert.body_html.is_empty() {
            builder.singlepart(SinglePart::plain(alert.body_text.clone()))
        } else {
            builder.multipart(MultiPart::alternative_plain_html(
                alert.body_text.clone(),
                alert.body_html.clone(),
            ))
        };
        let message =
            built.map_err(|e| SendError::Permanent(format!("cannot build the mail: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let s = SmtpSettings {
            host: "mail".into(),
            port: 25,
            tls: TlsMode::None,
            username: Some("u".into()),
            password: Some("hunter2-secret".into()),
            from: "a@b.c".into(),
            ca_file: None,
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
