//! GeoIP: country, subdivision, city, coordinates and network from MaxMind
//! format City and ASN databases, looked up on the full client address
//! (before anonymization).
//!
//! The databases are memory-mapped and swapped atomically when their files
//! change (polled) or on SIGHUP, so an update never needs a restart and a
//! lookup never waits for a lock. A replacement that does not open keeps
//! the old database and logs why.
//!
//! Each serving thread remembers the answers for the last addresses it
//! looked up (until the databases change): a recipient's opens and clicks,
//! and an image proxy's fetches, come from the same address again and
//! again, and a lookup reads two trees and decodes two records into
//! strings. The addresses stay in the thread's memory, never in an event.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use maxminddb::{Mmap, Reader};
use serde::Deserialize;

use super::remember::{owner_id, Remembered};
use crate::config::GeoIpConfig;
use crate::event::Geo;

/// How often the database files are checked for replacement.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// One opened database and what identifies its file.
struct Db {
    reader: Reader<Mmap>,
    stamp: Stamp,
}

/// What tells a replaced file from the one we have open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// A GeoIP database that cannot be used, naming its key and file.
#[derive(Debug, thiserror::Error)]
#[error("{key} {}: {why}", path.display())]
pub struct GeoError {
    /// The configuration key that names the file.
    pub key: &'static str,
    pub path: PathBuf,
    why: String,
}

fn geo_error(key: &'static str, path: &Path, why: impl std::fmt::Display) -> GeoError {
    GeoError {
        key,
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn open(key: &'static str, path: &Path) -> Result<Db, GeoError> {
    let st = stamp(path).map_err(|e| geo_error(key, path, e))?;
    // SAFETY: the map stays valid as long as the file's inode lives. Database
    // updates replace the file (write elsewhere, then rename, as
    // geoipupdate does), which leaves this mapping on the old inode; the
    // watcher then maps the new file. Writing into a database file in
    // place while trackedge runs is not supported, as with any mmap reader.
    #[allow(unsafe_code)]
    let reader = unsafe { Reader::open_mmap(path) }.map_err(|e| geo_error(key, path, e))?;
    // A truncated or garbled file fails here, at start-up, not per request.
    reader
        .lookup(IpAddr::from([1, 1, 1, 1]))
        .map_err(|e| geo_error(key, path, format!("not a valid database: {e}")))?;
    Ok(Db { reader, stamp: st })
}

/// A freshly opened database when `path`'s file changed (or always, when
/// `force`), else None; an error when it changed and cannot be opened.
fn refresh(
    key: &'static str,
    path: Option<&Path>,
    cur: &Option<Arc<Db>>,
    force: bool,
) -> Result<Option<Arc<Db>>, GeoError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let changed = match (stamp(path), cur) {
        (Ok(s), Some(db)) => force || s != db.stamp,
        (Ok(_), None) => true,
        // Mid-replacement while watching: keep what we have. Asked for a
        // reload, the file must be there.
        (Err(e), _) if force => return Err(geo_error(key, path, e)),
        (Err(_), _) => false,
    };
    if !changed {
        return Ok(None);
    }
    open(key, path).map(|db| Some(Arc::new(db)))
}

/// The databases in use; either may be absent.
struct Dbs {
    city: Option<Arc<Db>>,
    asn: Option<Arc<Db>>,
    /// Tells these databases' answers in a thread's [`RECENT`] from
    /// earlier ones'.
    generation: u64,
}

impl Dbs {
    fn new(city: Option<Arc<Db>>, asn: Option<Arc<Db>>) -> Dbs {
        Dbs {
            city,
            asn,
            generation: owner_id(),
        }
    }

    fn read(&self, ip: IpAddr) -> Option<Geo> {
        let mut g = Geo::default();
        if let Some(db) = &self.city {
            if let Ok(Some(rec)) = db.reader.lookup(ip).and_then(|r| r.decode::<CityRecord>()) {
                g.country = rec.country.and_then(|c| c.iso_code).map(str::to_owned);
                g.subdivision = rec
                    .subdivisions
                    .and_then(|s| s.into_iter().next())
                    .and_then(|s| s.iso_code)
                    .map(str::to_owned);
                g.city = rec
                    .city
                    .and_then(|c| c.names)
                    .and_then(|n| n.get("en").copied())
                    .map(str::to_owned);
                if let Some(loc) = rec.location {
                    g.latitude = loc.latitude;
                    g.longitude = loc.longitude;
                }
            }
        }
        if let Some(db) = &self.asn {
            if let Ok(Some(rec)) = db.reader.lookup(ip).and_then(|r| r.decode::<AsnRecord>()) {
                g.asn = rec.autonomous_system_number;
                g.as_org = rec.autonomous_system_organization.map(str::to_owned);
            }
        }
        (g != Geo::default()).then_some(g)
    }
}

/// Addresses each serving thread remembers: a busy campaign's recipients
/// for a few minutes; full, about 1 MiB per thread, then emptied.
const REMEMBERED: usize = 4096;

thread_local! {
    /// This thread's remembered answers, for the databases that gave them.
    static RECENT: RefCell<Remembered<IpAddr, Option<Arc<Geo>>>> =
        RefCell::new(Remembered::default());
}

/// GeoIP lookups with hot reload.
pub struct GeoIp {
    city_path: Option<PathBuf>,
    asn_path: Option<PathBuf>,
    dbs: ArcSwap<Dbs>,
}

impl GeoIp {
    /// Opens the configured databases; a missing or invalid file is an
    /// error naming its key.
    pub fn open(cfg: &GeoIpConfig) -> Result<GeoIp, GeoError> {
        let city_path = Some(PathBuf::from(&cfg.city_db)).filter(|p| !p.as_os_str().is_empty());
        let asn_path = Some(PathBuf::from(&cfg.asn_db)).filter(|p| !p.as_os_str().is_empty());
        let city = city_path
            .as_deref()
            .map(|p| open("geoip.city_db", p))
            .transpose()?
            .map(Arc::new);
        let asn = asn_path
            .as_deref()
            .map(|p| open("geoip.asn_db", p))
            .transpose()?
            .map(Arc::new);
        Ok(GeoIp {
            city_path,
            asn_path,
            dbs: ArcSwap::from_pointee(Dbs::new(city, asn)),
        })
    }

    /// Whether any database is configured.
    pub fn enabled(&self) -> bool {
        self.city_path.is_some() || self.asn_path.is_some()
    }

    /// Geo facts for `ip`; None when no database knows it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<Geo>> {
        let dbs = self.dbs.load();
        if dbs.city.is_none() && dbs.asn.is_none() {
            return None;
        }
        RECENT.with(|recent| {
            recent
                .borrow_mut()
                .get_or_make(dbs.generation, REMEMBERED, &ip, || {
                    dbs.read(ip).map(Arc::new)
                })
        })
    }

    /// Reopens any database whose file changed (or all, when `force`).
    /// Returns how many were swapped in; a database that cannot be opened
    /// is logged and the one in use kept.
    pub fn reload(&self, force: bool) -> usize {
        match self.try_reload(force) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "geoip reload failed; keeping the database in use");
                0
            }
        }
    }

    /// As [`GeoIp::reload`], failing (and swapping nothing) when a database
    /// cannot be opened: what a configuration reload needs to report.
    pub fn try_reload(&self, force: bool) -> Result<usize, GeoError> {
        let cur = self.dbs.load();
        let city = refresh("geoip.city_db", self.city_path.as_deref(), &cur.city, force)?;
        let asn = refresh("geoip.asn_db", self.asn_path.as_deref(), &cur.asn, force)?;
        let swapped = usize::from(city.is_some()) + usize::from(asn.is_some());
        if swapped > 0 {
            self.dbs.store(Arc::new(Dbs::new(
                city.or_else(|| cur.city.clone()),
                asn.or_else(|| cur.asn.clone()),
            )));
            tracing::info!(swapped, "geoip databases reloaded");
        }
        Ok(swapped)
    }
}
