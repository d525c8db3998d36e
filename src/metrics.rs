//! Metric names (contract §5), their descriptions, and the Prometheus recorder.
//!
//! Names live here as constants so no other module spells one; labels are
//! only ever small fixed sets (route, status, type, reason), never a
//! campaign, recipient, IP, UA or URL.

use std::sync::OnceLock;

use std::fmt::Write as _;

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::event::{AgentKind, EventType};
use crate::router::Route;
use crate::tally::{Histograms, Tally};
use crate::token::{Refusal, TokenType};

pub const HTTP_REQUESTS: &str = "trackedge_http_requests_total";
pub const HTTP_DURATION: &str = "trackedge_http_request_duration_seconds";
pub const EVENTS: &str = "trackedge_events_total";
pub const INVALID_TOKENS: &str = "trackedge_invalid_tokens_total";
pub const EVENTS_ACCEPTED: &str = "trackedge_events_accepted_total";
pub const EVENTS_DELIVERED: &str = "trackedge_events_delivered_total";
pub const EVENTS_DROPPED: &str = "trackedge_events_dropped_total";
pub const SPOOL_EVENTS: &str = "trackedge_spool_events";
pub const SPOOL_BYTES: &str = "trackedge_spool_bytes";
pub const SPOOL_MAX_BYTES: &str = "trackedge_spool_max_bytes";
pub const SPOOL_SET_ASIDE: &str = "trackedge_spool_segments_set_aside_total";
pub const SINK_QUEUE: &str = "trackedge_sink_queue_events";
pub const BUILD_INFO: &str = "trackedge_build_info";
pub const READY: &str = "trackedge_ready";
pub const SINK_UP: &str = "trackedge_sink_up";
pub const CONFIG_RELOADS: &str = "trackedge_config_reloads_total";
pub const EVENTS_SUPPRESSED: &str = "trackedge_events_suppressed_total";
pub const STATS_CAMPAIGNS: &str = "trackedge_stats_campaigns";
pub const STATS_EVICTED: &str = "trackedge_stats_evicted_total";
pub const STATS_REFUSED: &str = "trackedge_stats_refused_total";
pub const UA_CACHE_ENTRIES: &str = "trackedge_ua_cache_entries";
pub const UA_CACHE_EVICTIONS: &str = "trackedge_ua_cache_evictions_total";
pub const KAFKA_QUEUE: &str = "trackedge_kafka_queue_messages";
pub const KAFKA_BROKERS_UP: &str = "trackedge_kafka_brokers_up";
pub const KAFKA_TX_ERRORS: &str = "trackedge_kafka_tx_errors";
/// Kafka producers replaced, by `reason`: `fatal`, `fenced`, `stalled`.
pub const KAFKA_PRODUCER_RESETS: &str = "trackedge_kafka_producer_resets_total";
pub const ADMIN_AUTH_FAILURES: &str = "trackedge_admin_auth_failures_total";
pub const CONNECTIONS_REFUSED: &str = "trackedge_connections_refused_total";
/// TLS handshakes (`crate::tls`), by `result`: `ok`, `error`, `timeout`,
/// `no_certificate`, `acme_challenge`.
pub const TLS_HANDSHAKES: &str = "trackedge_tls_handshakes_total";
/// When the soonest-expiring certificate served expires, as a Unix time.
pub const TLS_CERT_EXPIRY: &str = "trackedge_tls_certificate_expiry_seconds";
/// ACME orders, by `result`: `ok`, `error`, `rate_limited`.
pub const ACME_ORDERS: &str = "trackedge_acme_orders_total";

/// Latency buckets in nanoseconds (exposed in seconds): most answers take
/// tens of microseconds, so the resolution is below a millisecond, with a
/// tail up to a second.
const DURATION_BUCKETS_NS: [u64; 12] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];
const ROUTES: usize = Route::LABELS.len();

/// `trackedge_http_requests_total`, by route then status: bumped per
/// request, so per thread ([`Tally`]), published at scrape.
pub static HTTP_REQUEST_COUNTS: Tally<{ ROUTES * Status::COUNT }> = Tally::new();
/// `trackedge_events_accepted_total`: bumped per event, so as above.
pub static EVENTS_ACCEPTED_COUNT: Tally<1> = Tally::new();
/// `trackedge_events_total`, by type then agent kind; as above.
pub static EVENT_COUNTS: Tally<{ EventType::COUNT * AgentKind::COUNT }> = Tally::new();
/// `trackedge_http_request_duration_seconds`, by route; rendered here.
pub static HTTP_DURATIONS: Histograms<
    ROUTES,
    { DURATION_BUCKETS_NS.len() },
    { ROUTES * (DURATION_BUCKETS_NS.len() + 2) },
> = Histograms::new(DURATION_BUCKETS_NS);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls (several servers
/// in one test process) find it installed.
pub fn install() {
    handle();
}

/// The Prometheus text of every series now: what `/metrics` answers, the
/// only place the text is rendered.
pub fn render() -> String {
    let handle = handle();
    publish_tallies();
    let mut text = handle.render();
    render_durations(&mut text);
    text
}

/// Copies the per-thread counts into the registry's counters; a series
/// shows once it has counted something, as with the macros.
fn publish_tallies() {
    counter!(EVENTS_ACCEPTED).absolute(EVENTS_ACCEPTED_COUNT.sum(0));
    for (r, route) in Route::LABELS.iter().enumerate() {
        for status in Status::ALL {
            let n = HTTP_REQUEST_COUNTS.sum(r * Status::COUNT + status as usize);
            if n > 0 {
                counter!(HTTP_REQUESTS, "route" => *route, "status" => status.label()).absolute(n);
            }
        }
    }
    for kind in EventType::ALL {
        for agent in AgentKind::ALL {
            let n = EVENT_COUNTS.sum(kind as usize * AgentKind::COUNT + agent as usize);
            if n > 0 {
                counter!(EVENTS, "type" => kind.as_str(), "agent_kind" => agent.as_str())
                    .absolute(n);
            }
        }
    }
}

/// Appends the request-duration histogram in the text format.
fn render_durations(out: &mut String) {
    let mut header = false;
    for (r, route) in Route::LABELS.iter().enumerate() {
        let Some(h) = HTTP_DURATIONS.snapshot(r) else {
            continue;
        };
        if !header {
            header = true;
            let _ = write!(
                out,
                "# HELP {HTTP_DURATION} Time to answer a public request, by route.\n\
                 # TYPE {HTTP_DURATION} histogram\n"
            );
        }
        for (bound, n) in DURATION_BUCKETS_NS.iter().zip(&h.cumulative) {
            let le = *bound as f64 / 1e9;
            let _ = writeln!(
                out,
                "{HTTP_DURATION}_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{HTTP_DURATION}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
             {HTTP_DURATION}_sum{{route=\"{route}\"}} {}\n\
             {HTTP_DURATION}_count{{route=\"{route}\"}} {}",
            h.count, h.sum_seconds, h.count
        );
    }
    if header {
        out.push('\n');
    }
}

fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            gauge!(BUILD_INFO, "version" => crate::VERSION).set(1.0);
            // Series a dashboard reads from the start, before anything happens.
            for c in [EVENTS_ACCEPTED, EVENTS_DELIVERED] {
                metrics::counter!(c).absolute(0);
            }
            for g in [SPOOL_EVENTS, SPOOL_BYTES, SINK_QUEUE] {
                gauge!(g).set(0.0);
            }
            metrics::counter!(ADMIN_AUTH_FAILURES).absolute(0);
            for reason in ["per_address_limit", "max_connections"] {
                metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).absolute(0);
            }
            for result in ["ok", "error"] {
                metrics::counter!(CONFIG_RELOADS, "result" => result).absolute(0);
                metrics::counter!(ACME_ORDERS, "result" => result).absolute(0);
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered on the public listener, by route and status."
    );
    describe_counter!(EVENTS, "Events recorded, by type and agent kind.");
    describe_counter!(
        INVALID_TOKENS,
        "Requests whose token did not verify, by route and reason."
    );
    describe_counter!(EVENTS_ACCEPTED, "Events handed to the sink.");
    describe_counter!(
        EVENTS_DELIVERED,
        "Events the sink has written or had acknowledged."
    );
    describe_counter!(
        EVENTS_DROPPED,
        "Accepted events that will never be delivered, by reason."
    );
    describe_gauge!(SPOOL_EVENTS, "Events waiting in the disk spool.");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "Bytes in the disk spool.");
    describe_gauge!(
        SPOOL_MAX_BYTES,
        Unit::Bytes,
        "The most bytes the disk spool may hold (kafka.spool_max_bytes)."
    );
    describe_counter!(
        SPOOL_SET_ASIDE,
        "Spool segments that could not be read, renamed .bad for an operator."
    );
    describe_gauge!(SINK_QUEUE, "Events waiting in the sink's in-memory queue.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label tells the build.");
    describe_gauge!(
        KAFKA_QUEUE,
        "Messages in librdkafka's producer queue (librdkafka statistics)."
    );
    describe_gauge!(
        KAFKA_BROKERS_UP,
        "Brokers librdkafka has an open connection to."
    );
    describe_gauge!(
        KAFKA_TX_ERRORS,
        "Transmit errors librdkafka counted since start, summed over brokers."
    );
    describe_counter!(
        EVENTS_SUPPRESSED,
        "Requests that yielded no event by privacy choice (privacy.on_opt_out = \"drop\")."
    );
    describe_gauge!(STATS_CAMPAIGNS, "Campaigns counted in /stats now.");
    describe_counter!(
        STATS_EVICTED,
        "Campaigns evicted from /stats to stay within stats.max_campaigns."
    );
    describe_counter!(
        STATS_REFUSED,
        "Links, countries or agent names not counted in /stats because of a cap, by what."
    );
    describe_gauge!(
        UA_CACHE_ENTRIES,
        "Distinct User-Agents held parsed in memory."
    );
    describe_counter!(
        UA_CACHE_EVICTIONS,
        "Times the User-Agent cache was full and emptied (agent.ua_cache_entries)."
    );
    describe_gauge!(
        READY,
        "1 while the node answers requests (not starting, not draining), else 0."
    );
    describe_gauge!(
        SINK_UP,
        "1 while events reach Kafka or the file, 0 while they are spooled or lost."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused or held back, by reason (per_address_limit, max_connections)."
    );
    describe_counter!(
        KAFKA_PRODUCER_RESETS,
        "Kafka producers replaced: fatal error, fenced, or stalled (brokers up, nothing acknowledged)."
    );
    describe_counter!(
        ADMIN_AUTH_FAILURES,
        "Admin requests refused for a missing or wrong server.admin_token."
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads (SIGHUP), by result (ok, error)."
    );
    describe_counter!(
        TLS_HANDSHAKES,
        "TLS handshakes on server.tls_listen, by result."
    );
    describe_gauge!(
        TLS_CERT_EXPIRY,
        Unit::Seconds,
        "Unix time at which the soonest-expiring certificate served expires."
    );
    describe_counter!(ACME_ORDERS, "ACME certificate orders, by result.");
}

/// The `status` label of `trackedge_http_requests_total`: the statuses the
/// public routes answer, and `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    S200,
    S204,
    S302,
    S400,
    S404,
    S405,
    S408,
    S413,
    S414,
    S431,
    S500,
    S503,
    Other,
}

impl Status {
    pub const COUNT: usize = Status::Other as usize + 1;
    pub const ALL: [Status; Status::COUNT] = [
        Status::S200,
        Status::S204,
        Status::S302,
        Status::S400,
        Status::S404,
        Status::S405,
        Status::S408,
        Status::S413,
        Status::S414,
        Status::S431,
        Status::S500,
        Status::S503,
        Status::Other,
    ];

    pub fn of(code: http::StatusCode) -> Status {
        match code.as_u16() {
            200 => Status::S200,
            204 => Status::S204,
            302 => Status::S302,
            400 => Status::S400,
            404 => Status::S404,
            405 => Status::S405,
            408 => Status::S408,
            413 => Status::S413,
            414 => Status::S414,
            431 => Status::S431,
            500 => Status::S500,
            503 => Status::S503,
            _ => Status::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::S200 => "200",
            Status::S204 => "204",
            Status::S302 => "302",
            Status::S400 => "400",
            Status::S404 => "404",
            Status::S405 => "405",
            Status::S408 => "408",
            Status::S413 => "413",
            Status::S414 => "414",
            Status::S431 => "431",
            Status::S500 => "500",
            Status::S503 => "503",
            Status::Other => "other",
        }
    }
}

/// Handles of one labelled metric family, each registered on first use and
/// then kept. `counter!` with labels builds its key and looks it up in the
/// recorder's registry on every call, which showed in profiles of the
/// request path; a kept handle is an atomic add. Registered lazily, so a series shows in
/// `/metrics` once it is first used, as with the macros.
pub struct Handles<T, const N: usize> {
    cells: [OnceLock<T>; N],
}

impl<T, const N: usize> Handles<T, N> {
    pub fn new() -> Self {
        Handles {
            cells: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The handle in slot `i`, registered by `register` the first time.
    pub fn get(&self, i: usize, register: impl FnOnce() -> T) -> &T {
        self.cells[i].get_or_init(register)
    }
}

impl<T, const N: usize> Default for Handles<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an accepted event will never be delivered: the `reason` label of
/// `trackedge_events_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The sink's in-memory queue was full.
    QueueFull,
    /// The event arrived while, or after, the sink shut down.
    Shutdown,
    /// The file or stdout sink could not write it.
    IoError,
    /// Kafka refused it for good (too large, invalid).
    Rejected,
    /// The channel to the spool's thread was full.
    SpoolQueueFull,
    /// The spool reached `kafka.spool_max_bytes`.
    SpoolFull,
    /// The spool could not write it.
    SpoolIoError,
    /// A spooled record was damaged on disk.
    SpoolCorrupt,
    /// Kafka refused a spooled record at every replay try.
    RetriesExhausted,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Shutdown => "shutdown",
            DropReason::IoError => "io_error",
            DropReason::Rejected => "rejected",
            DropReason::SpoolQueueFull => "spool_queue_full",
            DropReason::SpoolFull => "spool_full",
            DropReason::SpoolIoError => "spool_io_error",
            DropReason::SpoolCorrupt => "spool_corrupt",
            DropReason::RetriesExhausted => "retries_exhausted",
        }
    }
}

/// Counts `n` accepted events as dropped for `reason`. Off the request
/// path's fast lane: drops are rare, so the series is looked up each time.
pub fn dropped(reason: DropReason, n: u64) {
    if n > 0 {
        metrics::counter!(EVENTS_DROPPED, "reason" => reason.as_str()).increment(n);
    }
}

/// Counts a request that yielded no event because its sender opted out
/// (`privacy.on_opt_out = "drop"`).
pub fn suppressed_opt_out() {
    static HANDLE: OnceLock<metrics::Counter> = OnceLock::new();
    HANDLE
        .get_or_init(|| metrics::counter!(EVENTS_SUPPRESSED, "reason" => "opt_out"))
        .increment(1);
}

/// Counts a request whose token did not verify, on the route of token
/// type `route`. Kept handles: a flood of bad tokens costs an atomic add
/// each, not a registry lookup.
pub fn invalid_token(route: TokenType, reason: Refusal) {
    const ROUTES: usize = 3;
    static HANDLES: OnceLock<Handles<metrics::Counter, { ROUTES * Refusal::COUNT }>> =
        OnceLock::new();
    let r = Route::of_token(route);
    HANDLES
        .get_or_init(Handles::new)
        .get(
            route as usize * Refusal::COUNT + reason as usize,
            || metrics::counter!(INVALID_TOKENS, "route" => r.label(), "reason" => reason.label()),
        )
        .increment(1)
}
