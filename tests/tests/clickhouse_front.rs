//! The local ClickHouse (chdb-core behind infra/local/chfront.py) through the `clickhouse` crate:
//! the same client code the pipeline uses must work against it, and the engine features the
//! schema relies on (MergeTree TTL, codecs, ReplacingMergeTree FINAL, Aggregating/Summing trees fed
//! by materialized views, insert deduplication) must behave like ClickHouse.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clickhouse::{Client, Row};
use pprofhouse_tests::clickhouse::LocalClickHouse;
use serde::{Deserialize, Serialize};

#[derive(Row, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Sample {
    ts: u32,
    service: String,
    labels: Vec<(String, String)>,
    tags: Vec<String>,
    parent: Option<i64>,
    value: f64,
}

const SAMPLES_DDL: &str = "CREATE TABLE samples (
        ts DateTime CODEC(Delta, ZSTD(1)),
        service LowCardinality(String),
        labels Map(LowCardinality(String), String),
        tags Array(LowCardinality(String)),
        parent Nullable(Int64),
        value Float64 CODEC(ZSTD(1))
    ) ENGINE = MergeTree
    ORDER BY (service, ts)
    TTL ts + INTERVAL 30 DAY
    SETTINGS non_replicated_deduplication_window = 100";

fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

fn samples(n: u32, service_prefix: &str) -> Vec<Sample> {
    let t = now();
    (0..n)
        .map(|i| Sample {
            ts: t - i,
            service: format!("{service_prefix}{}", i % 3),
            labels: vec![("k".into(), format!("v'\\\"{i}")), ("ünï".into(), "€ \t\n".into())],
            tags: vec!["a".into(), format!("t{}", i % 2)],
            parent: (i % 2 == 0).then(|| -(i as i64)),
            value: i as f64 / 3.0,
        })
        .collect()
}

async fn setup(ch: &LocalClickHouse) -> Client {
    ch.client().query("CREATE DATABASE IF NOT EXISTS pprofhouse").execute().await.unwrap();
    let client = ch.client().with_database("pprofhouse");
    client.query(SAMPLES_DDL).execute().await.unwrap();
    client
}

async fn insert(client: &Client, rows: &[Sample], token: Option<&str>) -> clickhouse::error::Result<()> {
    let mut ins = client.insert::<Sample>("samples").await?;
    if let Some(token) = token {
        ins = ins.with_option("insert_deduplication_token", token);
    }
    for r in rows {
        ins.write(r).await?;
    }
    ins.end().await
}

async fn count(client: &Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_roundtrip_with_map_lowcardinality_and_bound_parameters() {
    let ch = LocalClickHouse::start().unwrap();
    let client = setup(&ch).await;

    // RowBinaryWithNamesAndTypes (validation on, the crate's default) and plain RowBinary.
    let rows = samples(2000, "svc");
    insert(&client, &rows, None).await.unwrap();
    let got = client.query("SELECT ?fields FROM samples WHERE service LIKE 'svc%' ORDER BY ts DESC").fetch_all::<Sample>().await.unwrap();
    assert_eq!(got, rows);

    let plain = client.clone().with_validation(false);
    let rows2 = samples(10, "plain");
    insert(&plain, &rows2, None).await.unwrap();
    let got = plain.query("SELECT ?fields FROM samples WHERE service LIKE 'plain%' ORDER BY ts DESC").fetch_all::<Sample>().await.unwrap();
    assert_eq!(got, rows2);

    // A map read back as a HashMap, selected by a client-side bound value.
    #[derive(Row, Deserialize, Debug)]
    struct Labels {
        labels: std::collections::HashMap<String, String>,
    }
    let l = client
        .query("SELECT labels FROM samples WHERE service = ? AND labels['k'] = ? LIMIT 1")
        .bind("svc1")
        .bind("v'\\\"1")
        .fetch_one::<Labels>()
        .await
        .unwrap();
    assert_eq!(l.labels.get("ünï").map(String::as_str), Some("€ \t\n"));

    // Quotes, backslashes, control characters and unicode survive both binding styles.
    #[derive(Row, Deserialize, Debug)]
    struct S {
        s: String,
    }
    for weird in ["o'ne \\ two \" ü€ \t\n end", "\\", "'", "`x`", "?", "{x:String}", ""] {
        let s = client.query("SELECT ? AS s").bind(weird).fetch_one::<S>().await.unwrap();
        assert_eq!(s.s, weird, "client-side bind");
        let s = client.query("SELECT {w:String} AS s").param("w", weird).fetch_one::<S>().await.unwrap();
        assert_eq!(s.s, weird, "server-side param");
    }
    // Server-side parameters of other types, and in a WHERE clause over the Map column.
    let n = client
        .query("SELECT count() FROM samples WHERE labels[{key:String}] = {val:String} AND has({svcs:Array(String)}, service)")
        .param("key", "k")
        .param("val", "v'\\\"4")
        .param("svcs", vec!["svc1", "x'y"])
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = client
        .query("SELECT count() FROM samples WHERE ts >= {since:UInt32} AND parent IS NULL")
        .param("since", now() - 10_000)
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(n, 1000 + 5);

    // Raw formats through fetch_bytes.
    let bytes = client
        .query("SELECT service, count() AS c FROM samples GROUP BY service ORDER BY service")
        .fetch_bytes("JSONEachRow")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("{\"service\":\"plain0\",\"c\":4}\n"), "{text}");

    // Concurrent queries are serialized by the front and all answer.
    let mut handles = Vec::new();
    for i in 0..6u64 {
        let c = client.clone();
        handles.push(tokio::spawn(async move { c.query("SELECT sum(number) FROM numbers(?)").bind(1000 + i).fetch_one::<u64>().await }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let n = 1000 + i as u64;
        assert_eq!(h.await.unwrap().unwrap(), n * (n - 1) / 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_clickhouse_exception_code() {
    let ch = LocalClickHouse::start().unwrap();
    let client = setup(&ch).await;

    let err = client.query("SELEC 1").execute().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Code: 62.") && msg.contains("SYNTAX_ERROR"), "{msg}");

    let err = client.query("SELECT * FROM nope").fetch_all::<Sample>().await.unwrap_err();
    assert!(err.to_string().contains("Code: 60."), "{err}");

    // Insert into a missing table: the metadata lookup (validation on) or the INSERT fails.
    let err = match client.insert::<Sample>("missing").await {
        Err(e) => e,
        Ok(mut ins) => {
            ins.write(&samples(1, "x")[0]).await.unwrap();
            ins.end().await.unwrap_err()
        }
    };
    assert!(err.to_string().contains("Code: 60."), "{err}");

    // Bad data in an INSERT body.
    let err = client.query("INSERT INTO samples (ts, service) FORMAT TSV\nnot-a-date\tx\n").execute().await.unwrap_err();
    assert!(err.to_string().contains("Code: "), "{err}");

    // An unknown setting is rejected like ClickHouse does (Code 115).
    let err = client.query("SELECT 1").with_option("no_such_setting", "1").execute().await.unwrap_err();
    assert!(err.to_string().contains("Code: 115."), "{err}");

    // A dropped (never ended) INSERT inserts nothing.
    {
        let mut ins = client.insert::<Sample>("samples").await.unwrap();
        for r in samples(5000, "aborted") {
            ins.write(&r).await.unwrap();
        }
        drop(ins);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&client, "SELECT count() FROM samples WHERE service LIKE 'aborted%'").await, 0);

    // The HTTP status and exception header, as ClickHouse sends them.
    let (head, body) = raw_http(ch.port(), "GET /?query=SELEC%201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(head.contains("X-ClickHouse-Exception-Code: 62"), "{head}");
    assert!(body.starts_with("Code: 62. DB::Exception:"), "{body}");
    let (head, body) = raw_http(ch.port(), "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "Ok.\n");
    // ClickHouse block compression is refused with a clear message, not answered with garbage.
    let (head, body) = raw_http(ch.port(), "GET /?compress=1&query=SELECT%201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("Compression::None"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_features_the_schema_relies_on() {
    let ch = LocalClickHouse::start_with_databases(&["pprofhouse"]).unwrap();
    let client = ch.client().with_database("pprofhouse");
    client.query(SAMPLES_DDL).execute().await.unwrap();

    // Deduplication: the same block twice with the same token is stored once; another token
    // stores it again (non_replicated_deduplication_window on a plain MergeTree).
    let rows = samples(50, "dedup");
    insert(&client, &rows, Some("batch-1")).await.unwrap();
    insert(&client, &rows, Some("batch-1")).await.unwrap();
    assert_eq!(count(&client, "SELECT count() FROM samples").await, 50);
    insert(&client, &rows, Some("batch-2")).await.unwrap();
    assert_eq!(count(&client, "SELECT count() FROM samples").await, 100);

    // TTL: expired rows disappear on merge.
    let old = Sample { ts: now() - 40 * 86400, ..samples(1, "old")[0].clone() };
    insert(&client, &[old], None).await.unwrap();
    client.query("OPTIMIZE TABLE samples FINAL").execute().await.unwrap();
    assert_eq!(count(&client, "SELECT count() FROM samples WHERE service LIKE 'old%'").await, 0);
    assert_eq!(count(&client, "SELECT count() FROM samples").await, 100);

    // ReplacingMergeTree + FINAL keeps the latest version.
    client
        .query("CREATE TABLE latest (k String, v UInt64, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY k")
        .execute()
        .await
        .unwrap();
    client.query("INSERT INTO latest VALUES ('a', 1, 1)").execute().await.unwrap();
    client.query("INSERT INTO latest VALUES ('a', 2, 2), ('b', 3, 1)").execute().await.unwrap();
    let v = client.query("SELECT v FROM latest FINAL WHERE k = 'a'").fetch_all::<u64>().await.unwrap();
    assert_eq!(v, vec![2]);

    // AggregatingMergeTree and SummingMergeTree fed by materialized views from the raw table.
    // ClickHouse 26.x (deduplicate_blocks_in_dependent_materialized_views = 1 by default): a
    // re-sent block is pushed to the views again and each *target* table deduplicates it on its
    // own, so the targets need non_replicated_deduplication_window too (on a plain MergeTree).
    client
        .query("CREATE TABLE by_service (service LowCardinality(String), total AggregateFunction(sum, Float64), q AggregateFunction(quantiles(0.5, 0.99), Float64), n SimpleAggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree ORDER BY service SETTINGS non_replicated_deduplication_window = 100")
        .execute()
        .await
        .unwrap();
    client
        .query("CREATE MATERIALIZED VIEW by_service_mv TO by_service AS SELECT service, sumState(value) AS total, quantilesState(0.5, 0.99)(value) AS q, count() AS n FROM samples GROUP BY service")
        .execute()
        .await
        .unwrap();
    client
        .query("CREATE TABLE sums (service LowCardinality(String), label String, value Float64) ENGINE = SummingMergeTree ORDER BY (service, label) SETTINGS non_replicated_deduplication_window = 100")
        .execute()
        .await
        .unwrap();
    client
        .query("CREATE MATERIALIZED VIEW sums_mv TO sums AS SELECT service, labels['k'] AS label, value FROM samples")
        .execute()
        .await
        .unwrap();
    let batch = samples(30, "mv");
    insert(&client, &batch, Some("mv-1")).await.unwrap();
    insert(&client, &batch, Some("mv-1")).await.unwrap(); // deduplicated: the views see it once
    insert(&client, &batch[..3], None).await.unwrap();
    #[derive(Row, Deserialize, Debug, PartialEq)]
    struct Agg {
        service: String,
        total: f64,
        n: u64,
    }
    let got = client
        .query("SELECT service, sumMerge(total) AS total, sum(n) AS n FROM by_service GROUP BY service ORDER BY service")
        .fetch_all::<Agg>()
        .await
        .unwrap();
    let expect: Vec<Agg> = (0..3)
        .map(|s| {
            let mine: Vec<&Sample> = batch.iter().chain(batch[..3].iter()).filter(|r| r.service == format!("mv{s}")).collect();
            Agg { service: format!("mv{s}"), total: mine.iter().map(|r| r.value).sum(), n: mine.len() as u64 }
        })
        .collect();
    assert_eq!(got.len(), 3);
    for (g, e) in got.iter().zip(&expect) {
        assert_eq!((&g.service, g.n), (&e.service, e.n));
        assert!((g.total - e.total).abs() < 1e-9, "{g:?} vs {e:?}");
    }
    let q =
        client.query("SELECT quantilesMerge(0.5, 0.99)(q) FROM by_service WHERE service = 'mv0'").fetch_one::<Vec<f64>>().await.unwrap();
    assert_eq!(q.len(), 2);
    client.query("OPTIMIZE TABLE sums FINAL").execute().await.unwrap();
    let total = client.query("SELECT sum(value) FROM sums FINAL").fetch_one::<f64>().await.unwrap();
    let want: f64 = batch.iter().chain(batch[..3].iter()).map(|r| r.value).sum();
    assert!((total - want).abs() < 1e-9, "{total} vs {want}");
    // One row per (service, label) after the merge; SummingMergeTree drops the row whose sum is
    // zero (i = 0), as ClickHouse does.
    assert_eq!(count(&client, "SELECT count() FROM sums").await, 29);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_port() {
    let mut ch = LocalClickHouse::start_with_databases(&["pprofhouse"]).unwrap();
    let url = ch.url();
    let client = ch.client().with_database("pprofhouse");
    client.query(SAMPLES_DDL).execute().await.unwrap();
    let rows = samples(100, "keep");
    insert(&client, &rows, None).await.unwrap();

    // A clean stop and start.
    ch.stop().unwrap();
    assert!(client.query("SELECT 1").execute().await.is_err(), "down: requests fail");
    ch.restart().unwrap();
    assert_eq!(ch.url(), url);
    let got = client.query("SELECT ?fields FROM samples ORDER BY ts DESC").fetch_all::<Sample>().await.unwrap();
    assert_eq!(got, rows);

    // A crash (SIGKILL) after an acknowledged INSERT loses nothing acknowledged.
    let more = samples(10, "crash");
    insert(&client, &more, None).await.unwrap();
    ch.kill().unwrap();
    assert!(!ch.is_running());
    ch.restart().unwrap();
    assert_eq!(count(&client, "SELECT count() FROM samples").await, 110);
    assert!(ch.log_tail(200).contains("stopping: SIGTERM"), "{}", ch.log_tail(20));
}

/// One HTTP/1.1 request over a fresh connection; returns (status line + headers, body).
fn raw_http(port: u16, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_string(), body.to_string())
}
