//! One ACME conversation at a time: the HTTPS client that talks to the
//! CA, the account (restored from the cache or created), and an order for
//! one name from new-order to certificate (RFC 8555 §7.4).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::cache::Cache;
use super::challenge::Challenges;
use crate::tls::certs::provider;
use crate::tls::config::{AcmeConfig, Challenge};
use crate::tls::TlsError;

/// Why an ACME step failed, in words for the log and `/readyz`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AcmeError(pub String);

impl From<String> for AcmeError {
    fn from(s: String) -> AcmeError {
        AcmeError(s)
    }
}

/// The HTTPS client for the CA.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Polling an order: quick first looks (a CA often validates within a
/// second), backing off to a minute and a half in all.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// Builds the client: the system's roots plus `tls.acme.ca_file`.
pub fn http_client(cfg: &AcmeConfig) -> Result<HttpClient, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // A system store that cannot be read is not fatal when ca_file names
    // the CA (a test or private ACME server); an empty one fails at use.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if !cfg.ca_file.is_empty() {
        let bad = |why: String| TlsError::Config {
            key: "tls.acme.ca_file",
            why: format!("{}: {why}", cfg.ca_file),
        };
        let certs = CertificateDer::pem_file_iter(&cfg.ca_file)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| bad(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The account: the cached one, or a new one (then cached). Returns
/// whether it was created.
pub async fn account(
    cfg: &AcmeConfig,
    http: &HttpClient,
    cache: &Cache,
) -> Result<(Account, bool), AcmeError> {
    let url = &cfg.directory_url;
    if let Some(json) = cache.account(url) {
        match serde_json::from_str::<AccountCredentials>(&json) {
            Ok(creds) => {
                let a = Account::builder_with_http(Box::new(http.clone()))
                    .from_credentials(creds)
                    .await
                    .map_err(|e| format!("cannot reach {url}: {e}"))?;
                return Ok((a, false));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cached ACME account unreadable; creating a new one")
            }
        }
    }
    let contact: Vec<&str> = Some(cfg.contact.as_str())
        .filter(|c| !c.is_empty())
        .into_iter()
        .collect();
    let (account, creds) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            url.clone(),
            None,
        )
        .await
        .map_err(|e| format!("cannot create an account at {url}: {e}"))?;
    let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    cache.store_account(url, &json).map_err(|e| e.to_string())?;
    tracing::info!(directory = %url, "ACME account created");
    Ok((account, true))
}

/// Withdraws published answers however the order ends.
struct Published<'a> {
    challenges: &'a Challenges,
    done: Vec<(String, String)>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for (name, token) in &self.done {
            self.challenges.remove(name, token);
        }
    }
}

/// Orders a certificate for `name` and returns its PEM chain and key.
pub async fn order(
    account: &Account,
    name: &str,
    challenges: &Arc<Challenges>,
    prefer: Challenge,
) -> Result<(String, String), AcmeError> {
    let ids = [Identifier::Dns(name.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut published = Published {
        challenges,
        done: Vec::new(),
    };
    let order_of = match prefer {
        Challenge::TlsAlpn01 => [ChallengeType::TlsAlpn01, ChallengeType::Http01],
        Challenge::Http01 => [ChallengeType::Http01, ChallengeType::TlsAlpn01],
    };
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError(format!("authorization for {name} is {other:?}"))),
        }
        let Some(kind) = order_of
            .iter()
            .find(|t| authz.challenges.iter().any(|c| c.r#type == **t))
            .cloned()
        else {
            return Err(AcmeError(format!(
                "the CA offers neither tls-alpn-01 nor http-01 for {name}"
            )));
        };
        let mut ch = authz
            .challenge(kind.clone())
            .expect("offered, checked above");
        let ka = ch.key_authorization();
        let token = ch.token.clone();
        match kind {
            ChallengeType::TlsAlpn01 => challenges
                .put_tls_alpn01(name, ka.digest().as_ref())
                .map_err(|e| e.to_string())?,
            _ => challenges.put_http01(&token, ka.as_str()),
        }
        published.done.push((name.to_owned(), token));
        ch.set_ready()
            .await
            .map_err(|e| format!("challenge ready: {e}"))?;
    }
    let status = order
        .poll_ready(&POLL)
        .await
        .map_err(|e| format!("validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(AcmeError(format!(
            "order for {name} is {status:?}, not ready"
        )));
    }
    drop(published);
    let key = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&POLL)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    Ok((chain, key))
}
