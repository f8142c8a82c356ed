//! xln's in-process half of `xln-bench` (issue 15): the workloads over one channel on two
//! `ln_core::Node`s in this process, alice - bob, called through the `Node` API as a Rust
//! program that embeds xln calls it: no HTTP, no JSON, no process boundary.
//!
//! Beside the xlnd rows they show what the JSON-RPC API costs a payment; beside LDK Node's
//! they compare like with like, both called in process. The nodes run the builder's defaults,
//! which are xlnd's (`--xlnd-arg`s do not reach them), on the chain node xlnd's nodes use; their
//! channel is as large as xlnd's A-B, funded with a coin from xlnd's alice.
//!
//! The three-hop workloads are not run here: a route through bob and carol adds the same work
//! whichever API the payer is called through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ln_core::node::{ChannelPolicy, Node, PaymentStatus};
use ln_core::ChainParams;

use super::{
    pay_in_flight, PaymentFigures, Workload, WorkloadKind, FUNDING_FEE_ALLOWANCE_SAT, WARM_UP,
};
use crate::ln_node::{wait_for, TestNode};
use crate::steps::mine;
use crate::three_nodes::NodesDir;
use crate::xlnd::{process_cpu_time, Xlnd};
use crate::Bitcoind;

/// How long setting up waits for the nodes at each step.
const WAIT: Duration = Duration::from_secs(120);
/// How long one payment may take: as long as the JSON-RPC client waits for an answer.
const PAYMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// Seconds until the invoices expire: longer than any workload.
const INVOICE_EXPIRY_SECS: u32 = 3600;

/// Whether `kind` runs on the in-process nodes: the workloads over one channel.
pub fn runs(kind: WorkloadKind) -> bool {
    matches!(
        kind,
        WorkloadKind::KeysendToBob | WorkloadKind::InvoicesOfBob
    )
}

/// Starts alice and bob in this process on `chain_node` (`params`' chain), has `funder` send
/// alice a coin, opens an announced channel alice - bob of `capacity_sat`, and measures those
/// of `workloads` that [`runs`] allows; `progress` hears of each step as it starts. The nodes
/// are stopped before it returns.
pub async fn measure(
    chain_node: &Bitcoind,
    params: &ChainParams,
    funder: &Xlnd,
    capacity_sat: u64,
    amount_msat: u64,
    workloads: &[Workload],
    progress: &dyn Fn(&str),
) -> Result<Vec<PaymentFigures>> {
    progress("xln Rust API: starting alice and bob in this process; opening their channel");
    let dir = NodesDir::new(
        tempfile::Builder::new()
            .prefix("xln-bench-node-api-")
            .tempdir()
            .context("creating the in-process nodes' directory")?,
    );
    let alice_dir = dir.path().join("alice");
    let alice =
        TestNode::start_with_params(chain_node, &alice_dir, "alice", params.clone()).await?;
    let bob_dir = dir.path().join("bob");
    let bob = TestNode::start_with_params(chain_node, &bob_dir, "bob", params.clone()).await?;
    let figures = async {
        open_channel(chain_node, params, funder, &alice, &bob, capacity_sat).await?;
        pay_workloads(&alice.node, &bob.node, amount_msat, workloads, progress).await
    }
    .await;
    alice.node.stop().await;
    bob.node.stop().await;
    figures
}

/// `funder` sends alice a coin, alice opens an announced channel of `capacity_sat` to bob, and
/// the chain confirms it as deep as `params`' policy asks; returns once both can use it.
async fn open_channel(
    chain_node: &Bitcoind,
    params: &ChainParams,
    funder: &Xlnd,
    alice: &TestNode,
    bob: &TestNode,
    capacity_sat: u64,
) -> Result<()> {
    let coin_sat = capacity_sat + FUNDING_FEE_ALLOWANCE_SAT;
    funder
        .cli(&[
            "withdraw",
            &alice.node.new_address()?,
            &coin_sat.to_string(),
        ])
        .context("sending the in-process alice her coin")?;
    mine(chain_node, 1, &[funder])?;
    wait_for("the in-process alice's coin confirmed", WAIT, || async {
        (alice.node.list_funds().onchain_confirmed_sat >= coin_sat).then_some(())
    })
    .await?;
    alice.node.connect_uri(&bob.uri()?).await?;
    alice
        .node
        .open_channel(bob.node.node_id(), capacity_sat, 0, true)
        .await
        .context("the in-process alice opening a channel to bob")?;
    mine(
        chain_node,
        ChannelPolicy::for_chain(params).minimum_depth,
        &[funder],
    )?;
    alice.usable_channel_with(bob, WAIT).await?;
    bob.usable_channel_with(alice, WAIT).await?;
    Ok(())
}

/// The warm-up, then those of `workloads` that [`runs`] allows, in order.
async fn pay_workloads(
    alice: &Node,
    bob: &Node,
    amount_msat: u64,
    workloads: &[Workload],
    progress: &dyn Fn(&str),
) -> Result<Vec<PaymentFigures>> {
    progress("xln Rust API: warming up: 20 keysends alice -> bob");
    pay_many(alice, bob, amount_msat, &WARM_UP).await?;
    let mut figures = Vec::new();
    for workload in workloads.iter().filter(|w| runs(w.kind)) {
        progress(&format!("xln Rust API: {workload}"));
        figures.push(pay_many(alice, bob, amount_msat, workload).await?);
    }
    Ok(figures)
}

/// Makes `workload.payments` payments of `amount_msat` from alice to bob,
/// `workload.in_flight` at a time ([`pay_in_flight`]).
async fn pay_many(
    alice: &Node,
    bob: &Node,
    amount_msat: u64,
    workload: &Workload,
) -> Result<PaymentFigures> {
    let invoices = match workload.kind {
        WorkloadKind::InvoicesOfBob => (0..workload.payments)
            .map(|n| {
                bob.create_invoice(
                    Some(amount_msat),
                    &format!("bench {n}"),
                    Some(INVOICE_EXPIRY_SECS),
                    None,
                )
                .map(|invoice| invoice.bolt11)
                .context("the in-process bob making an invoice")
            })
            .collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    let (alice, invoices, bob_id) = (alice.clone(), Arc::new(invoices), bob.node_id());
    let cpu_before = process_cpu_time(std::process::id())?;
    let (outcomes, wall) = pay_in_flight(workload, move |index| {
        let (alice, invoices) = (alice.clone(), Arc::clone(&invoices));
        async move {
            let call = Instant::now();
            let paid = match invoices.get(index) {
                Some(bolt11) => {
                    alice
                        .pay_invoice(bolt11, None, None, Some(PAYMENT_TIMEOUT))
                        .await
                }
                None => {
                    alice
                        .keysend(bob_id, amount_msat, None, Some(PAYMENT_TIMEOUT))
                        .await
                }
            };
            match paid {
                Ok(record) if record.status == PaymentStatus::Succeeded => Ok(call.elapsed()),
                Ok(record) => Err(format!(
                    "{:?}: {}",
                    record.status,
                    record.failure_reason.unwrap_or_default()
                )),
                Err(error) => Err(error.to_string()),
            }
        }
    })
    .await;
    let cpu = process_cpu_time(std::process::id())?.saturating_sub(cpu_before);
    Ok(PaymentFigures::new(workload, outcomes, wall, cpu))
}
