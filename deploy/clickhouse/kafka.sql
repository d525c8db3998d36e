-- Feed trackedge_events from the Kafka topic trackedge produces to.
--
-- Run deploy/clickhouse/events.sql first. Then set the broker list below
-- (kafka_broker_list: the same brokers as trackedge's kafka.brokers) and:
--
--   clickhouse-client --multiquery < deploy/clickhouse/kafka.sql
--
-- How it works: trackedge_events_queue is a Kafka engine table, a consumer
-- in group `clickhouse-trackedge` reading topic `trackedge.events` (each
-- record one JSON event, schema/event.v1.json). Nothing is stored in it; the
-- materialized view trackedge_events_from_kafka moves every block it reads
-- into trackedge_events, and the consumer commits its offsets after the
-- block is written. A crash between the write and the commit reads the
-- block again: the copies collapse in trackedge_events (ReplacingMergeTree
-- on event_id) like trackedge's own at-least-once repeats.
--
-- Records that are not valid JSON events do not stall the stream: they go
-- to trackedge_events_errors with the error and the raw text, kept 30 days.
--
-- To pause consumption:   DETACH TABLE trackedge_events_from_kafka;
-- to resume:              ATTACH TABLE trackedge_events_from_kafka;
-- Several ClickHouse replicas can run this with the same group name: Kafka
-- spreads the topic's partitions over them. For a secured cluster, add the
-- librdkafka settings (SASL, TLS) to a <kafka> section of the server config.

CREATE TABLE IF NOT EXISTS trackedge_events_queue
(
    -- The same fields as trackedge_events, without its computed columns.
    `schema`     LowCardinality(String),
    `event_id`   UUID,
    `type`       LowCardinality(String),
    `ts_ms`      Int64,
    `campaign`   String,
    `recipient`  String,
    `message`    String,
    `link`       String,
    `url`        String,
    `name`       LowCardinality(String),
    `src`        String,
    `referer`    String,
    `sent_at_ms` Nullable(Int64),
    `attrs`      Map(String, String),
    `method`     LowCardinality(String),
    `one_click`  Nullable(Bool),
    `ip`         String,
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
                     kind        LowCardinality(String),
                     name        LowCardinality(String),
                     reason      LowCardinality(String)),
    `visitor`    String,
    `privacy`    Tuple(dnt Bool, gpc Bool, opted_out Bool)
)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:9092',          -- edit: trackedge's kafka.brokers
    kafka_topic_list = 'trackedge.events',     -- trackedge's kafka.topic
    kafka_group_name = 'clickhouse-trackedge',
    kafka_format = 'JSONEachRow',              -- one event per record
    kafka_num_consumers = 1,                   -- up to the topic's partitions
    kafka_handle_error_mode = 'stream',        -- bad records to _error, below
    -- Fields a later trackedge adds are skipped until you add columns
    -- for them (to both tables).
    input_format_skip_unknown_fields = 1;


CREATE MATERIALIZED VIEW IF NOT EXISTS trackedge_events_from_kafka
TO trackedge_events AS
SELECT *
FROM trackedge_events_queue
WHERE length(_error) = 0;


CREATE TABLE IF NOT EXISTS trackedge_events_errors
(
    `received_at` DateTime DEFAULT now(),
    `topic`       LowCardinality(String),
    `partition`   UInt64,
    `offset`      UInt64,
    `error`       String,
    `raw`         String
)
ENGINE = MergeTree
ORDER BY received_at
TTL received_at + INTERVAL 30 DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS trackedge_events_errors_from_kafka
TO trackedge_events_errors AS
SELECT
    _topic         AS topic,
    _partition     AS partition,
    _offset        AS offset,
    _error         AS error,
    _raw_message   AS raw
FROM trackedge_events_queue
WHERE length(_error) > 0;
