//! Gossip end to end, on real `xlnd` processes driven by `xln-cli`: once alice - bob - carol's
//! channels are six blocks deep, each end's `channel_update` reaches the node two hops away
//! without another block, so alice can route to carol and carol to alice. LDK's router passes
//! over a channel until both ends' updates are known, and LDK rebroadcasts a channel's gossip
//! only every 6 blocks: an update lost on the way left the channel unusable for an hour.

use anyhow::{ensure, Context, Result};
use xln_tests::steps::channel;
use xln_tests::three_nodes::{TestChain, ThreeNodes, ALICE, BOB, CAROL};

/// Both ends' policies of the channel two hops away reach alice and carol, and each can route to
/// the other through bob.
fn routes_both_ways_once_the_channels_are_announced(chain: TestChain) -> Result<()> {
    // Gossip lines (LDK's GOSSIP level is TRACE) say which update was dropped, should one be.
    let logs: &[&str] = &["--log-level=info,ldk=trace,ln_core::gossip_handler=trace"];
    let Some(net) = ThreeNodes::start(chain, "gossip", [logs, logs, logs])? else {
        return Ok(());
    };
    net.wait_for_gossip()
        .with_context(|| format!("the nodes' logs end:\n{}", net.log_tails()))?;
    let amount_msat = net.capacity_sat * 10;
    let route_through_bob = |from: usize, to: usize| -> Result<()> {
        let route = net.nodes[from]
            .cli(&["getroute", &net.ids[to], &amount_msat.to_string()])
            .with_context(|| {
                format!(
                    "{} found no route to {}; the nodes' logs end:\n{}",
                    net.nodes[from].name,
                    net.nodes[to].name,
                    net.log_tails()
                )
            })?;
        ensure!(
            route["hops"][0]["node_id"] == net.ids[BOB].as_str()
                && route["hops"][1]["node_id"] == net.ids[to].as_str(),
            "{} should route through bob: {route}",
            net.nodes[from].name
        );
        Ok(())
    };
    route_through_bob(ALICE, CAROL)?;
    // carol's side of B-C starts empty: alice pays her first, so that she has more than her
    // channel reserve (1 % of the channel) plus the amount and bob's fee to send.
    let sent =
        net.nodes[ALICE].cli(&["keysend", &net.ids[CAROL], &(amount_msat * 4).to_string()])?;
    ensure!(
        sent["status"] == "succeeded",
        "alice's keysend to carol: {sent}"
    );
    // alice's keysend succeeds once bob has her preimage; carol can spend what she received
    // only after she and bob have exchanged their last commitment and revocation on B-C, a few
    // milliseconds later. Asked at once, her router found no channel able to carry the amount.
    let bc = &net.channels[1].0;
    net.nodes[CAROL].wait_cli(
        &["listchannels"],
        "carol able to send the amount over B-C",
        std::time::Duration::from_secs(30),
        |channels| {
            let limit = channel(channels, bc)?["next_outbound_htlc_limit_msat"].as_u64()?;
            (limit > amount_msat * 2).then_some(())
        },
    )?;
    route_through_bob(CAROL, ALICE)?;
    Ok(())
}

#[test]
fn a_new_channel_two_hops_away_is_routable_without_another_block_on_bitcoin() -> Result<()> {
    routes_both_ways_once_the_channels_are_announced(TestChain::Bitcoin)
}

#[test]
fn a_new_channel_two_hops_away_is_routable_without_another_block_on_qtum() -> Result<()> {
    routes_both_ways_once_the_channels_are_announced(TestChain::Qtum)
}
