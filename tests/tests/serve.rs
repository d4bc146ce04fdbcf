#![allow(non_snake_case)]
//! `pprofhouse serve` on the real components: `go tool pprof` as the client of profefe's merge
//! endpoint, profefe's listing routes, POST → S3 (profefe's key) → event → worker → visible in
//! `top` and readable back by id, the bearer token, the body limit and profefe-shaped errors.
//! Needs `go` on PATH.
use std::path::PathBuf;
use std::time::Duration;

use pprofhouse_tests::paths::fixtures;
use pprofhouse_tests::pipeline::{Pipeline, BUCKET};
use pprofhouse_tests::pprof::{go_pprof_top, Top};
use pprofhouse_tests::serve::{get, request, Server};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const TOKEN: &str = "t0ps3cret-for-tests";

fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % DAY - 3 * DAY
}

/// RFC 3339 in UTC (`…Z`), and profefe's own format (no offset, UTC).
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
fn profefe_time(ms: i64) -> String {
    iso(ms).trim_end_matches('Z').to_string()
}

fn files(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| fixtures().join(n)).collect()
}

fn serve(p: &Pipeline, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend(args);
    let mut cmd = p.command(&all);
    cmd.envs(env.iter().copied()).stderr(std::fs::File::create(p.dir().join(format!("{name}.stderr"))).unwrap());
    Server::start(cmd).expect("start pprofhouse serve")
}

fn load(p: &Pipeline, service: &str, ptype: &str, ms: i64, labels: &[&str], file: &str) {
    let time = iso(ms);
    let path = fixtures().join(file).display().to_string();
    let mut args = vec!["load", "--service", service, "--type", ptype, "--time", &time];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.push(&path);
    let out = p.run(&args, Duration::from_secs(120)).unwrap();
    assert!(out.status.success(), "load: {}", String::from_utf8_lossy(&out.stderr));
}

/// An error answer is profefe's `{"code": status, "error": "…"}`.
fn assert_error(a: &pprofhouse_tests::serve::Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    let j = a.json();
    assert_eq!(j["code"], status, "{j}");
    let msg = j["error"].as_str().unwrap_or_else(|| panic!("no error in {j}"));
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    assert!(j.get("body").is_none(), "{j}");
}

#[test]
fn go_tool_pprof_reads_the_merge_endpoint_and_posted_profiles_flow_through_the_pipeline() {
    let T0 = t0();
    let p = Pipeline::start().expect("start the local components (infra/local/install all)");
    let heap = ["go-workload-heap.pb.gz", "go-heap-2021.pb.gz", "go-workload-allocs.pb.gz"];
    load(&p, "checkout", "heap", T0 + HOUR, &["version=1.2"], heap[0]);
    load(&p, "search", "heap", T0 + 2 * HOUR, &["version=1.3"], heap[1]);
    load(&p, "ads", "heap", T0 + 3 * HOUR, &["version=1.3"], heap[2]);
    let open = serve(&p, "open", &[], &[]);
    let (from, to) = (iso(T0), iso(T0 + DAY));

    // `go tool pprof URL` over the fleet equals `go tool pprof FILES`, every sample type.
    let url = open.url(&format!("/api/0/profiles/merge?type=heap&from={from}&to={to}"));
    for st in ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"] {
        let want = go_pprof_top(&files(&heap), st);
        assert!(!want.is_empty());
        assert_eq!(go_pprof_top(&[&url], st), want, "{st}");
    }
    // One service, a label, profefe's time format and type number.
    let url = open.url(&format!(
        "/api/0/profiles/merge?service=search&type=2&labels=version=1.3&from={}&to={}",
        profefe_time(T0),
        profefe_time(T0 + DAY)
    ));
    assert_eq!(go_pprof_top(&[&url], "inuse_space/bytes"), go_pprof_top(&files(&[heap[1]]), "inuse_space/bytes"));
    let url = open.url(&format!("/api/0/profiles/merge?type=heap&labels=version=1.3&from={from}&to={to}"));
    assert_eq!(go_pprof_top(&[&url], "alloc_space/bytes"), go_pprof_top(&files(&heap[1..]), "alloc_space/bytes"));
    let merged = get(open.addr(), &format!("/api/0/profiles/merge?type=heap&from={from}&to={to}"), &[]).unwrap();
    assert_eq!(merged.header("content-type"), Some("application/octet-stream"));

    // Listing routes.
    let services = get(open.addr(), "/api/0/services", &[]).unwrap();
    assert_eq!(services.status, 200);
    assert_eq!(services.json(), serde_json::json!({"code": 200, "body": ["ads", "checkout", "search"]}));
    let list = get(open.addr(), &format!("/api/0/profiles?service=search&type=heap&from={from}&to={to}"), &[]).unwrap();
    let j = list.json();
    assert_eq!(j["code"], 200, "{j}");
    let body = j["body"].as_array().unwrap();
    assert_eq!(body.len(), 1, "{j}");
    assert_eq!(body[0]["service"], "search");
    assert_eq!(body[0]["type"], "heap");
    assert_eq!(body[0]["labels"], serde_json::json!([{"key": "version", "value": "1.3"}]));
    assert_eq!(body[0]["created_at"].as_str().unwrap(), iso(T0 + 2 * HOUR).replace('Z', ".000Z"));
    let all = get(open.addr(), &format!("/api/0/profiles?type=heap&from={from}&to={to}"), &[]).unwrap().json();
    assert_eq!(all["body"].as_array().unwrap().len(), 3, "{all}");
    // A profile loaded from a local file has no object to return.
    let id = body[0]["id"].as_str().unwrap();
    assert_error(&get(open.addr(), &format!("/api/0/profiles/{id}"), &[]).unwrap(), 404, "local file");

    // Errors are profefe's JSON.
    assert_error(
        &get(open.addr(), &format!("/api/0/profiles/merge?service=nobody&type=heap&from={from}&to={to}"), &[]).unwrap(),
        404,
        "nothing found",
    );
    assert_error(
        &get(open.addr(), &format!("/api/0/profiles/merge?service=search&from={from}&to={to}"), &[]).unwrap(),
        400,
        "missing type",
    );
    assert_error(&get(open.addr(), "/api/0/profiles/merge?type=heap&from=yesterday", &[]).unwrap(), 400, "bad \"from\" timestamp");
    assert_error(&get(open.addr(), "/api/0/profiles/not-a-uuid", &[]).unwrap(), 400, "bad profile id");
    assert_error(&get(open.addr(), &format!("/api/0/profiles/{}", uuid_zero()), &[]).unwrap(), 404, "nothing found");
    assert_error(
        &request(open.addr(), "POST", "/api/0/profiles?service=x&type=cpu", &[], b"not a profile", false).unwrap(),
        400,
        "not a usable profile",
    );
    assert_error(&request(open.addr(), "POST", "/api/0/profiles?type=cpu", &[], b"x", false).unwrap(), 400, "missing service");

    // POST → S3 under profefe's key → the bucket's event → worker → `top` and the API.
    let cpu_file = fixtures().join("go-workload-cpu.pb.gz");
    let cpu = std::fs::read(&cpu_file).unwrap();
    let posted = request(open.addr(), "POST", "/api/0/profiles?service=poster&type=cpu&labels=version%3D9", &[], &cpu, false).unwrap();
    assert_eq!(posted.status, 200, "{}", String::from_utf8_lossy(&posted.body));
    let j = posted.json();
    assert_eq!(j["code"], 200, "{j}");
    let key = j["body"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("P0.poster/1/") && key.ends_with(",version=9"), "{key}");
    assert_eq!(j["body"]["labels"], serde_json::json!([{"key": "version", "value": "9"}]));
    let stored = p.block_on(async {
        p.s3.client().get_object().bucket(BUCKET).key(&key).send().await.unwrap().body.collect().await.unwrap().into_bytes()
    });
    assert_eq!(&stored[..], &cpu[..], "the object is the posted body");
    p.note_upload(&key, cpu.len() as u64, j["body"]["etag"].as_str().map(str::to_string));
    p.deliver_events(&[&key]).unwrap();
    let out = p.run_worker_until_idle(&[]).unwrap();
    assert!(out.status.success(), "worker: {}", String::from_utf8_lossy(&out.stderr));
    let want = go_pprof_top(&[&cpu_file], "cpu/nanoseconds");
    assert_eq!(p.top(&["--type", "cpu", "--sample-type", "cpu/nanoseconds", "--service", "poster", "--since", "1h"]), want);
    // The id POST answered is the stored profile's: it reads back the very bytes.
    let id = j["body"]["id"].as_str().unwrap();
    let raw = get(open.addr(), &format!("/api/0/profiles/{id}"), &[]).unwrap();
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    assert_eq!(raw.body, cpu);
    // The fleet top as JSON.
    let top = get(open.addr(), "/api/0/top?type=cpu&service=poster&since=1h&sample_type=cpu/nanoseconds&n=100000", &[]).unwrap().json();
    assert_eq!(top["window"]["sample_type"], "cpu/nanoseconds", "{top}");
    assert!(top["window"]["from"].is_string() && top["window"]["to"].is_string(), "{top}");
    let got: Top = top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["function"].as_str().unwrap().to_string(), (f["flat"].as_i64().unwrap(), f["cum"].as_i64().unwrap())))
        .collect();
    assert_eq!(got, want);
    let mut open = open;
    assert!(open.stop(Duration::from_secs(20)).unwrap().success(), "SIGTERM: a clean exit");

    // A token and a body limit.
    let locked = serve(&p, "locked", &["--max-body-bytes", "4096", "--max-merge-stacks", "2"], &[("PPROFHOUSE_SERVE_TOKEN", TOKEN)]);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let a = get(locked.addr(), "/api/0/services", &[]).unwrap();
    assert_error(&a, 401, "unauthorized");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    assert_error(&get(locked.addr(), "/api/0/services", &[("Authorization", "Bearer wrong")]).unwrap(), 401, "unauthorized");
    assert_error(&request(locked.addr(), "POST", "/api/0/profiles?service=x&type=cpu", &[], &cpu, true).unwrap(), 401, "unauthorized");
    assert_eq!(
        get(locked.addr(), "/api/0/services", &auth).unwrap().json()["body"],
        serde_json::json!(["ads", "checkout", "poster", "search"])
    );
    let capped = get(locked.addr(), &format!("/api/0/profiles/merge?type=heap&from={from}&to={to}"), &auth).unwrap();
    assert_error(&capped, 400, "more than 2 distinct stacks");
    // Over the limit: 413 before the body is sent (Expect: 100-continue) …
    assert!(cpu.len() > 4096);
    assert_error(&request(locked.addr(), "POST", "/api/0/profiles?service=x&type=cpu", &auth, &cpu, true).unwrap(), 413, "max_body_bytes");
    // … and a body under it is stored.
    let small = std::fs::read(fixtures().join("go-workload-threadcreate.pb.gz")).unwrap();
    assert!(small.len() < 4096);
    let ok = request(locked.addr(), "POST", "/api/0/profiles?service=small&type=threadcreate", &auth, &small, true).unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert!(ok.json()["body"]["key"].as_str().unwrap().starts_with("P0.small/6/"));
    let mut locked = locked;
    assert!(locked.stop(Duration::from_secs(20)).unwrap().success());
    // The token is in no log line.
    for name in ["open", "locked"] {
        let log = std::fs::read_to_string(p.dir().join(format!("{name}.stderr"))).unwrap();
        assert!(!log.contains(TOKEN), "{name}: {log}");
    }
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}
