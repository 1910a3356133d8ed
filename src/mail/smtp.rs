//! One SMTP delivery, driven step by step so the sender can write its receipt
//! the moment the server accepts a message, before the goodbye (`QUIT`) that
//! lettre's ready-made transport waits for. A crash in that wait would
//! otherwise send the message again after restart.
//!
//! The URL forms are lettre's: `smtp://host[:25]`, `smtp://host[:587]?tls=required`
//! (STARTTLS, refuse without it), `?tls=opportunistic` (STARTTLS when offered),
//! `smtps://host[:465]` (TLS from the start), with `user:password@` for
//! authentication (PLAIN or LOGIN, percent-encoded) and an optional path that
//! names this host in `EHLO`.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::Error;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

/// How long one network step (connect, a command and its answer) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message was not delivered.
#[derive(Debug)]
pub enum SendError {
    /// Connecting, TLS or logging in failed: a problem with the server or
    /// with `mail.smtp_url`, not with this message, so worth retrying even
    /// when the server's answer was a 5xx (a wrong password, say).
    Session(Error),
    /// The server answered this message (its sender, recipient or data)
    /// with an error, or the connection broke while sending it.
    Message(Error),
}

/// A configured SMTP server.
pub struct SmtpServer {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpServer {
    /// Parse `mail.smtp_url`. The error says what is wrong without repeating
    /// the URL (it may hold a password).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("it names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let params = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (port, tls) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None) => (25, Tls::None),
            ("smtp", Some("required")) => (587, Tls::Required(params()?)),
            ("smtp", Some("opportunistic")) => (587, Tls::Opportunistic(params()?)),
            ("smtps", None) => (465, Tls::Wrapper(params()?)),
            ("smtp", Some(other)) => {
                return Err(format!(
                    "tls={other:?} is not a TLS mode; use tls=required or tls=opportunistic"
                ));
            }
            (scheme, _) => {
                return Err(format!(
                    "scheme {scheme:?} is not smtp or smtps (smtps takes no tls= setting)"
                ));
            }
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "its user name or password is not UTF-8 once percent-decoded")
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Self {
            port: url.port().unwrap_or(port),
            host,
            tls,
            hello,
            credentials,
        })
    }

    /// `host:port`, for messages (never the user name or password).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Deliver `message`, call `accepted` with the server's answer as soon as
    /// it has taken the message (its `250` to the end of the data), then say
    /// goodbye. A failure after acceptance is only logged: the message is
    /// delivered.
    pub async fn send<T>(
        &self,
        envelope: &Envelope,
        message: &[u8],
        accepted: impl FnOnce(&Response) -> T,
    ) -> Result<T, SendError> {
        let mut conn = self.connect().await.map_err(SendError::Session)?;
        let result = conn.send(envelope, message).await;
        let outcome = result.map(|r| accepted(&r)).map_err(SendError::Message);
        if outcome.is_ok() {
            if let Err(e) = conn.quit().await {
                tracing::debug!(error = %e, "SMTP server did not answer QUIT after accepting the message");
            }
        } else {
            conn.abort().await;
        }
        outcome
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let wrapper = match &self.tls {
            Tls::Wrapper(params) => Some(params.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(TIMEOUT),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        match &self.tls {
            Tls::Required(params) => conn.starttls(params.clone(), &self.hello).await?,
            Tls::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params.clone(), &self.hello).await?
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> SmtpServer {
        SmtpServer::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn each_url_form_picks_its_port_and_tls() {
        let plain = parsed("smtp://127.0.0.1");
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 25));
        assert!(matches!(plain.tls, Tls::None));
        assert!(plain.credentials.is_none());
        assert!(matches!(
            parsed("smtp://mail.example.org?tls=required").tls,
            Tls::Required(_)
        ));
        assert_eq!(parsed("smtp://mail.example.org?tls=required").port, 587);
        assert!(matches!(
            parsed("smtp://mail.example.org:2525?tls=opportunistic").tls,
            Tls::Opportunistic(_)
        ));
        assert_eq!(
            parsed("smtp://mail.example.org:2525?tls=opportunistic").port,
            2525
        );
        let wrapped = parsed("smtps://user:p%40ss@mail.example.org/rosterd.example.org");
        assert_eq!(wrapped.port, 465);
        assert!(matches!(wrapped.tls, Tls::Wrapper(_)));
        assert_eq!(
            wrapped.credentials,
            Some(Credentials::new("user".into(), "p@ss".into()))
        );
        assert_eq!(
            wrapped.hello,
            ClientId::Domain("rosterd.example.org".into())
        );
        assert_eq!(parsed("smtp://[::1]:2525").host, "::1");
        assert_eq!(parsed("smtp://[::1]:2525").address(), "[::1]:2525");
        assert_eq!(
            parsed("smtps://user:p%40ss@mail.example.org").address(),
            "mail.example.org:465"
        );
    }

    #[test]
    fn unusable_urls_say_what_is_wrong() {
        for (url, says) in [
            ("smtp://mail.example.org?tls=always", "tls=\"always\""),
            (
                "smtps://mail.example.org?tls=required",
                "smtps takes no tls=",
            ),
            ("http://mail.example.org", "\"http\""),
            ("smtp:///nohost", "no host"),
            ("not a url", "relative URL"),
        ] {
            match SmtpServer::from_url(url) {
                Ok(_) => panic!("{url} was accepted"),
                Err(e) => assert!(e.contains(says), "{url}: {e}"),
            }
        }
    }
}
