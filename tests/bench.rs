//! `xln-bench` works: the binary, run once with tiny counts on a real bitcoind, four real xlnd
//! nodes, two in-process `ln_core::Node`s and four LDK Node nodes, prints every workload's
//! figures for each as JSON with no failed payment, and their ratios, then a few seconds of sustained payments. It asserts no
//! speed (issue 15: speed is read from the bench's output, not from tests).

use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

#[test]
fn the_bench_measures_every_workload_on_xln_and_ldk_node_with_tiny_counts() -> Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_xln-bench"))
        .args([
            "--payments=3",
            "--other-payments=3",
            "--concurrency=1,3",
            "--sync-blocks=10",
            "--sustained-minutes=0.05",
            "--restart-channels=2",
            "--json",
        ])
        .output()
        .context("running xln-bench")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "xln-bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("xln-bench printed no JSON; stderr: {stderr}"))?;
    let every_kind = [
        "keysend A->B",
        "pay A->B",
        "keysend A->B->C->D",
        "pay A->B->C->D",
    ];
    for (node, kinds) in [
        ("payments", &every_kind[..]),
        ("ldk_node_payments", &every_kind[..]),
        // The in-process nodes have one channel between them.
        ("node_api_payments", &every_kind[..2]),
    ] {
        every_workload_paid(&report[node], kinds).with_context(|| format!("{node}: {report}"))?;
    }
    for (ratios, count) in [("xln_over_ldk_node", 8), ("node_api_over_ldk_node", 4)] {
        let listed = report[ratios].as_array().context("no ratios")?;
        ensure!(
            listed.len() == count
                && listed.iter().all(|r| {
                    r["payments_per_sec"].as_f64().is_some_and(|x| x > 0.0)
                        && r["p50_ms"].as_f64().is_some_and(|x| x > 0.0)
                }),
            "{ratios}: {report}"
        );
    }
    ensure!(report["ldk_node_skipped"].is_null(), "{report}");
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
        report["restart_channels"] == 2 && report["restart_with_channels_ms"].as_f64() > Some(0.0),
        "{report}"
    );
    ensure!(
        report["catch_up_blocks_per_sec"].as_f64() > Some(0.0),
        "{report}"
    );
    // 3 s of sustained keysends: one stretch, shorter than a minute, every payment made.
    let sustained = report["sustained"].as_array().context("no sustained")?;
    ensure!(
        sustained.len() == 1
            && sustained.iter().all(|row| {
                row["figures"]["failed"] == 0
                    && row["figures"]["payments"].as_u64() > Some(0)
                    && row["alice_rss_kib"].as_u64() > Some(0)
                    && row["alice_datadir_kib"].as_u64() > Some(0)
            }),
        "sustained: {report}"
    );
    ensure!(
        stderr.contains("xln-bench: restarting bob"),
        "no progress: {stderr}"
    );
    Ok(())
}

/// Checks that `workloads` (`payments`, `node_api_payments` or `ldk_node_payments`) holds the
/// workloads of `kinds` at 1 and then 3 in flight, each with all its payments made and a latency.
fn every_workload_paid(workloads: &Value, kinds: &[&str]) -> Result<()> {
    let workloads = workloads.as_array().context("not a list")?;
    let names: Vec<(&str, u64)> = workloads
        .iter()
        .map(|w| {
            (
                w["workload"].as_str().unwrap_or("?"),
                w["in_flight"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expected: Vec<(&str, u64)> = [1, 3]
        .into_iter()
        .flat_map(|in_flight| kinds.iter().map(move |kind| (*kind, in_flight)))
        .collect();
    ensure!(names == expected, "workloads: {names:?}");
    for workload in workloads {
        ensure!(
            workload["failed"] == 0 && workload["payments"] == 3,
            "a workload had failures: {workload}"
        );
        ensure!(
            workload["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "no latency: {workload}"
        );
        // Three payments may take less than /proc's 10 ms tick: zero is a figure too.
        ensure!(
            workload["cpu_ms_per_payment"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0),
            "no CPU time: {workload}"
        );
    }
    Ok(())
}
