//! What a configuration reload swaps in: signing keys, the enricher (agent
//! rules, GeoIP, privacy, cookies) and the click fallback, built whole from
//! one [`Config`] so a request sees one consistent version.

use std::sync::Arc;

use http::header::HeaderValue;

use crate::config::Config;
use crate::enrich::agent::RulesError;
use crate::enrich::geo::GeoIp;
use crate::enrich::Enricher;
use crate::token::Keyring;

/// The reloadable state, built from one configuration.
pub struct Live {
    /// The configuration this was built from.
    pub cfg: Config,
    /// Verifies tokens; built once with keyed HMAC states.
    pub keys: Keyring,
    /// UA cache, agent rules, geo, cookies and privacy.
    pub enricher: Enricher,
    /// Where invalid click links go, when configured.
    pub fallback: Option<HeaderValue>,
}

impl Live {
    /// Builds the reloadable state of `cfg` around `geo`; fails (naming
    /// the key) when the agent rules do not compile.
    pub fn new(cfg: Config, geo: Arc<GeoIp>) -> Result<Live, RulesError> {
        // The exact serialization a browser follows, as for tokens' `u`.
        let fallback = Some(cfg.click.fallback_url.as_str())
            .filter(|u| !u.is_empty())
            .and_then(|u| crate::token::destination(u).ok())
            .and_then(|u| HeaderValue::from_str(&u).ok());
        Ok(Live {
            keys: Keyring::new(&cfg.effective_keys()),
            enricher: Enricher::new(&cfg, geo)?,
            fallback,
            cfg,
        })
    }
}
