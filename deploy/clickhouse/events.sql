-- trackedge events in ClickHouse: the table and the report views.
--
--   clickhouse-client --multiquery < deploy/clickhouse/events.sql
--
-- (add --database NAME to put them somewhere other than `default`; every
-- statement is IF NOT EXISTS, so running it again is harmless). Then feed
-- the table from the Kafka topic with deploy/clickhouse/kafka.sql, or insert
-- event files directly:
--
--   clickhouse-client --query 'INSERT INTO trackedge_events FORMAT JSONEachRow' < data/events.ndjson
--
-- trackedge_events takes trackedge's records (schema/event.v1.json) as
-- JSONEachRow with no transform: every field is a column of the same name,
-- the nested geo, ua, agent and privacy objects are named tuples (read
-- their parts as agent.kind, geo.country, ...), attrs is a Map. An absent
-- value reads as the column's default: '' for strings, NULL where the
-- difference matters (sent_at_ms, one_click, coordinates, asn).
--
-- Delivery is at least once, so the same event can arrive more than once.
-- The table is a ReplacingMergeTree whose sorting key ends in event_id: the
-- copies are collapsed when parts merge, in the background. Until then they
-- are both stored, so reports read through FINAL: every view below does,
-- and so should your own queries (or use trackedge_events_dedup).

CREATE TABLE IF NOT EXISTS trackedge_events
(
    `schema`     LowCardinality(String),
    `event_id`   UUID,
    `type`       LowCardinality(String),          -- open, click, unsubscribe, beacon
    `ts_ms`      Int64,                           -- unix milliseconds
    `campaign`   String,                          -- '' for a beacon without c=
    `recipient`  String,
    `message`    String,
    `link`       String,
    `url`        String,
    `name`       LowCardinality(String),          -- beacon event name
    `src`        String,
    `referer`    String,
    `sent_at_ms` Nullable(Int64),
    `attrs`      Map(String, String),
    `method`     LowCardinality(String),
    `one_click`  Nullable(Bool),                  -- unsubscribes only
    `ip`         String,                          -- already anonymized by trackedge
    `geo`        Tuple(
                     country     LowCardinality(String),
                     subdivision LowCardinality(String),
                     city        String,
                     latitude    Nullable(Float64),
                     longitude   Nullable(Float64),
                     asn         Nullable(UInt32),
                     as_org      LowCardinality(String)),
    `ua`         Tuple(
                     raw         String,
                     name        LowCardinality(String),
                     version     LowCardinality(String),
                     os          LowCardinality(String),
                     os_version  LowCardinality(String),
                     category    LowCardinality(String),
                     vendor      LowCardinality(String)),
    `agent`      Tuple(
                     kind        LowCardinality(String),   -- human, proxy, bot
                     name        LowCardinality(String),   -- gmail_image_proxy, ms_safe_links, ...
                     reason      LowCardinality(String)),  -- ua, ip, method, timing, burst
    `visitor`    String,
    `privacy`    Tuple(dnt Bool, gpc Bool, opted_out Bool),

    -- Computed from ts_ms on insert; not part of the records.
    `ts`         DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(ts_ms, 'UTC'),
    `day`        Date MATERIALIZED toDate(ts),

    -- Finds one recipient's events quickly (an access or erasure request:
    -- ALTER TABLE trackedge_events DELETE WHERE recipient = '...').
    INDEX recipient_idx recipient TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
-- Monthly partitions: few enough parts, and old months drop cheaply.
PARTITION BY toYYYYMM(day)
-- Per-campaign, per-day reports read one contiguous range. event_id last,
-- so that two copies of an event share the whole key and collapse.
ORDER BY (campaign, day, type, event_id)
-- Retention. Off by default: events are kept until you delete them. To keep
-- them for, say, 13 months (a GDPR-minded default for raw events), uncomment
-- the TTL line below before creating the table, or on an existing table run
--   ALTER TABLE trackedge_events MODIFY TTL day + INTERVAL 13 MONTH DELETE;
-- and to change it later run MODIFY TTL again with another interval, or
--   ALTER TABLE trackedge_events REMOVE TTL;
-- Expired rows go at merges; whole expired partitions are dropped at once.
-- TTL day + INTERVAL 13 MONTH DELETE
;


-- One row per event_id, for ad-hoc queries.
CREATE VIEW IF NOT EXISTS trackedge_events_dedup AS
SELECT *, ts, day
FROM trackedge_events FINAL;


-- The /stats questions, per campaign and day. Opens, clicks and
-- unsubscribes are counted as on a node's /stats page; *_unique counts
-- distinct recipients (exactly; events without a recipient do not count).
-- human / proxy / bot: agent.kind, i.e. people, image proxies fetching for
-- people (Gmail, Yahoo, Apple Mail Privacy Protection), and machines on
-- their own (link scanners, previewers). For "real" engagement read
-- opens_human + opens_proxy and clicks_human.
--
--   SELECT * FROM trackedge_campaign_daily
--   WHERE campaign = 'spring-sale' AND day >= today() - 7 ORDER BY day;
CREATE VIEW IF NOT EXISTS trackedge_campaign_daily AS
SELECT
    campaign,
    day,
    countIf(type = 'open')                                          AS opens,
    uniqExactIf(recipient, type = 'open' AND recipient != '')       AS opens_unique,
    countIf(type = 'open' AND agent.kind = 'human')                 AS opens_human,
    countIf(type = 'open' AND agent.kind = 'proxy')                 AS opens_proxy,
    countIf(type = 'open' AND agent.kind = 'bot')                   AS opens_bot,
    countIf(type = 'click')                                         AS clicks,
    uniqExactIf(recipient, type = 'click' AND recipient != '')      AS clicks_unique,
    countIf(type = 'click' AND agent.kind = 'human')                AS clicks_human,
    countIf(type = 'click' AND agent.kind = 'proxy')                AS clicks_proxy,
    countIf(type = 'click' AND agent.kind = 'bot')                  AS clicks_bot,
    uniqExactIf(recipient, type = 'click' AND agent.kind = 'human' AND recipient != '')
                                                                    AS clicks_human_unique,
    countIf(type = 'unsubscribe')                                   AS unsubscribes,
    countIf(type = 'unsubscribe' AND one_click)                     AS unsubscribes_one_click,
    countIf(type = 'beacon')                                        AS beacons
FROM trackedge_events FINAL
WHERE campaign != ''
GROUP BY campaign, day;


-- The same over a campaign's whole life (distinct recipients do not add up
-- across days, so this is not a sum of the daily rows).
--
--   SELECT * FROM trackedge_campaigns WHERE campaign = 'spring-sale';
CREATE VIEW IF NOT EXISTS trackedge_campaigns AS
SELECT
    campaign,
    min(day)                                                        AS first_day,
    max(day)                                                        AS last_day,
    countIf(type = 'open')                                          AS opens,
    uniqExactIf(recipient, type = 'open' AND recipient != '')       AS opens_unique,
    countIf(type = 'open' AND agent.kind = 'human')                 AS opens_human,
    countIf(type = 'open' AND agent.kind = 'proxy')                 AS opens_proxy,
    countIf(type = 'open' AND agent.kind = 'bot')                   AS opens_bot,
    countIf(type = 'click')                                         AS clicks,
    uniqExactIf(recipient, type = 'click' AND recipient != '')      AS clicks_unique,
    countIf(type = 'click' AND agent.kind = 'human')                AS clicks_human,
    countIf(type = 'click' AND agent.kind = 'proxy')                AS clicks_proxy,
    countIf(type = 'click' AND agent.kind = 'bot')                  AS clicks_bot,
    uniqExactIf(recipient, type = 'click' AND agent.kind = 'human' AND recipient != '')
                                                                    AS clicks_human_unique,
    countIf(type = 'unsubscribe')                                   AS unsubscribes,
    countIf(type = 'unsubscribe' AND one_click)                     AS unsubscribes_one_click,
    countIf(type = 'beacon')                                        AS beacons
FROM trackedge_events FINAL
WHERE campaign != ''
GROUP BY campaign;


-- Clicks per link: every click, distinct recipients, and people only.
--
--   SELECT link, clicks, clicks_unique FROM trackedge_link_daily
--   WHERE campaign = 'spring-sale' AND day = today() ORDER BY clicks DESC;
CREATE VIEW IF NOT EXISTS trackedge_link_daily AS
SELECT
    campaign,
    day,
    link,
    count()                                                         AS clicks,
    uniqExactIf(recipient, recipient != '')                         AS clicks_unique,
    countIf(agent.kind = 'human')                                   AS clicks_human,
    uniqExactIf(recipient, agent.kind = 'human' AND recipient != '') AS clicks_human_unique
FROM trackedge_events FINAL
WHERE type = 'click' AND campaign != '' AND link != ''
GROUP BY campaign, day, link;

CREATE VIEW IF NOT EXISTS trackedge_links AS
SELECT
    campaign,
    link,
    count()                                                         AS clicks,
    uniqExactIf(recipient, recipient != '')                         AS clicks_unique,
    countIf(agent.kind = 'human')                                   AS clicks_human,
    uniqExactIf(recipient, agent.kind = 'human' AND recipient != '') AS clicks_human_unique
FROM trackedge_events FINAL
WHERE type = 'click' AND campaign != '' AND link != ''
GROUP BY campaign, link;


-- Opens, clicks and unsubscribes per country (geo.country, looked up on
-- the client's full address by trackedge; proxies report the proxy's
-- country, so filter on agent.kind = 'human' for where people are).
--
--   SELECT country, events FROM trackedge_country_daily
--   WHERE campaign = 'spring-sale' AND day = today() ORDER BY events DESC;
CREATE VIEW IF NOT EXISTS trackedge_country_daily AS
SELECT
    campaign,
    day,
    geo.country                                                     AS country,
    count()                                                         AS events,
    countIf(type = 'open')                                          AS opens,
    countIf(type = 'click')                                         AS clicks,
    countIf(type = 'unsubscribe')                                   AS unsubscribes,
    countIf(agent.kind = 'human')                                   AS human
FROM trackedge_events FINAL
WHERE type IN ('open', 'click', 'unsubscribe') AND campaign != '' AND geo.country != ''
GROUP BY campaign, day, country;

CREATE VIEW IF NOT EXISTS trackedge_countries AS
SELECT
    campaign,
    geo.country                                                     AS country,
    count()                                                         AS events,
    countIf(type = 'open')                                          AS opens,
    countIf(type = 'click')                                         AS clicks,
    countIf(type = 'unsubscribe')                                   AS unsubscribes,
    countIf(agent.kind = 'human')                                   AS human
FROM trackedge_events FINAL
WHERE type IN ('open', 'click', 'unsubscribe') AND campaign != '' AND geo.country != ''
GROUP BY campaign, country;


-- Known machines (agent.name) per campaign and day: which proxies and
-- scanners fetched what.
CREATE VIEW IF NOT EXISTS trackedge_agent_daily AS
SELECT
    campaign,
    day,
    agent.name                                                      AS agent,
    any(agent.kind)                                                 AS kind,
    count()                                                         AS events,
    countIf(type = 'open')                                          AS opens,
    countIf(type = 'click')                                         AS clicks
FROM trackedge_events FINAL
WHERE type IN ('open', 'click', 'unsubscribe') AND campaign != '' AND agent.name != ''
GROUP BY campaign, day, agent;

CREATE VIEW IF NOT EXISTS trackedge_agents AS
SELECT
    campaign,
    agent.name                                                      AS agent,
    any(agent.kind)                                                 AS kind,
    count()                                                         AS events,
    countIf(type = 'open')                                          AS opens,
    countIf(type = 'click')                                         AS clicks
FROM trackedge_events FINAL
WHERE type IN ('open', 'click', 'unsubscribe') AND campaign != '' AND agent.name != ''
GROUP BY campaign, agent;
