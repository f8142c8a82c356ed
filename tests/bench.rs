//! `xln-bench` works: the binary, run once with tiny counts on a real bitcoind and three real
//! xlnd nodes, prints every workload's figures as JSON with no failed payment. It asserts no
//! speed (issue 15: speed is read from the bench's output, not from tests).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

#[test]
fn the_bench_measures_every_workload_with_tiny_counts() -> Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_xln-bench"))
        .args([
            "--payments=3",
            "--concurrency=1,3",
            "--sync-blocks=10",
            "--json",
        ])
        .output()
        .context("running xln-bench")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "xln-bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("xln-bench printed no JSON; stderr: {stderr}"))?;
    let workloads = report["payments"].as_array().context("no payments")?;
    let names: Vec<(&str, u64)> = workloads
        .iter()
        .map(|w| {
            (
                w["workload"].as_str().unwrap_or("?"),
                w["in_flight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(
        names
            == [
                ("keysend A->B", 1),
                ("keysend A->B", 3),
                ("pay A->B", 1),
                ("pay A->B", 25),
                ("keysend A->B->C", 1),
                ("keysend A->B->C", 25),
            ],
        "workloads: {names:?}"
    );
    for workload in workloads {
        ensure!(
            workload["failed"] == 0 && workload["payments"] == 3,
            "a workload had failures: {workload}"
        );
        ensure!(
            workload["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "no latency: {workload}"
        );
    }
    for field in ["rss_idle_kib", "rss_after_kib"] {
        ensure!(
            report[field]
                .as_array()
                .is_some_and(|kib| kib.iter().all(|k| k.as_u64() > Some(0))),
            "{field}: {report}"
        );
    }
    ensure!(report["restart_ms"].as_f64() > Some(0.0), "{report}");
    ensure!(
        report["catch_up_blocks_per_sec"].as_f64() > Some(0.0),
        "{report}"
    );
    ensure!(
        stderr.contains("xln-bench: restarting bob"),
        "no progress: {stderr}"
    );
    Ok(())
}
