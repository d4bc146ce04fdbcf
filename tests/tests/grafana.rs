//! The Grafana dashboard: its JSON is what `dashboard.py` generates, and every variable and
//! panel query runs on the real ClickHouse engine with the answers the raw queries give, hostile
//! variable values included (`infra/grafana/check_dashboard.py`).
use std::process::Command;

use pprofhouse_tests::clickhouse::venv_python;
use pprofhouse_tests::paths::repo_root;

#[test]
fn the_committed_dashboard_is_the_generated_one() {
    let json = repo_root().join("infra/grafana/dashboards/pprofhouse.json");
    let committed = std::fs::read(&json).unwrap();
    let out = Command::new("python3").arg(repo_root().join("infra/grafana/dashboard.py")).output().unwrap();
    let generated = std::fs::read(&json).unwrap();
    std::fs::write(&json, &committed).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(generated == committed, "dashboards/pprofhouse.json is stale: run python3 infra/grafana/dashboard.py");
}

#[test]
fn every_dashboard_query_runs_and_agrees_with_the_raw_queries() {
    let out = Command::new(venv_python()).arg(repo_root().join("infra/grafana/check_dashboard.py")).output().unwrap();
    assert!(
        out.status.success(),
        "check_dashboard.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("hostile variable values select nothing: ok")
            && stdout.contains("movers panel is the report's test: ok")
            && stdout.contains("dashboard queries: all ok"),
        "{stdout}"
    );
}
