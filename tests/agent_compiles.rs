//! The agent rules compile exactly once per configuration load: loading
//! and validating a config compiles none, building the app compiles one,
//! and a reload one more (issue 19). Its own test binary, so no other test
//! compiles rules meanwhile.

use std::sync::Arc;

use trackedge::app::{App, Live};
use trackedge::config::Config;
use trackedge::enrich::agent::compile_count;
use trackedge::enrich::geo::GeoIp;
use trackedge::sink::{Health, Sink};

struct Null;
impl Sink for Null {
    fn submit(&self, _event: trackedge::event::Event) {}
    fn health(&self) -> Health {
        Health::Ok
    }
    fn pending(&self) -> usize {
        0
    }
    fn shutdown(&self, _timeout: std::time::Duration) {}
}

#[test]
fn rules_compile_once_per_load() {
    let cfg = Config::from_toml("").unwrap();
    assert_eq!(compile_count(), 0, "validation compiles no rules");
    let app = App::new(cfg.clone(), Arc::new(Null)).unwrap();
    assert_eq!(compile_count(), 1, "one compile per start");
    let geo = Arc::new(GeoIp::open(&cfg.geoip).unwrap());
    app.swap_live(Live::new(cfg, geo).unwrap());
    assert_eq!(compile_count(), 2, "one more per reload");
}
