//! `newaddr`, `listfunds`, `withdraw`, `listbroadcasts`.

use std::sync::Arc;

use bitcoin::Amount;
use ln_core::ldk_adapters::{BroadcastOutcome as Outcome, BroadcastRecord};
use ln_core::wallet::SendAmount;
use rpc_contract::onchain::{
    Broadcast, BroadcastOutcome, FundsChannel, ListBroadcastsResult, ListFundsResult,
    NewAddrResult, WalletOutput, WithdrawParams, WithdrawResult,
};
use rpc_contract::types::SatOrAll;
use rpc_contract::NoParams;

use super::channels::channel_state;
use super::{node_error, Context, RpcResult};

/// `newaddr`.
pub async fn newaddr(ctx: Arc<Context>, _: NoParams) -> RpcResult<NewAddrResult> {
    let address = ctx.node.new_address().map_err(node_error)?;
    Ok(NewAddrResult { address })
}

/// `listfunds`.
pub async fn listfunds(ctx: Arc<Context>, _: NoParams) -> RpcResult<ListFundsResult> {
    let funds = ctx.node.list_funds();
    Ok(ListFundsResult {
        onchain_confirmed_sat: funds.onchain_confirmed_sat,
        onchain_unconfirmed_sat: funds.onchain_unconfirmed_sat,
        onchain_immature_sat: funds.onchain_immature_sat,
        pending_sweep_sat: funds.pending_sweep_sat,
        anchor_reserve_sat: funds.anchor_reserve_sat,
        outputs: funds
            .outputs
            .iter()
            .map(|o| WalletOutput {
                txid: o.txid.to_string(),
                vout: o.vout,
                amount_sat: o.amount_sat,
                address: o.address.clone(),
                confirmations: o.confirmations,
            })
            .collect(),
        channels: funds
            .channels
            .iter()
            .map(|c| FundsChannel {
                channel_id: c.channel_id.clone(),
                peer_id: c.peer_id.to_string(),
                our_amount_msat: c.local_balance_msat,
                capacity_sat: c.capacity_sat,
                state: channel_state(c.state),
            })
            .collect(),
    })
}

/// `withdraw`.
pub async fn withdraw(ctx: Arc<Context>, params: WithdrawParams) -> RpcResult<WithdrawResult> {
    let amount = match params.amount_sat {
        SatOrAll::Sat(sat) => SendAmount::Exact(Amount::from_sat(sat)),
        SatOrAll::All => SendAmount::All,
    };
    let feerate = params.feerate_sat_per_vb.map(|rate| rate.get());
    let txid = ctx
        .node
        .withdraw(&params.address, amount, feerate)
        .await
        .map_err(node_error)?;
    Ok(WithdrawResult {
        txid: txid.to_string(),
    })
}

/// `listbroadcasts`.
pub async fn listbroadcasts(ctx: Arc<Context>, _: NoParams) -> RpcResult<ListBroadcastsResult> {
    Ok(ListBroadcastsResult {
        broadcasts: ctx.node.recent_broadcasts().iter().map(broadcast).collect(),
    })
}

fn broadcast(record: &BroadcastRecord) -> Broadcast {
    let (outcome, reason) = match &record.outcome {
        Outcome::Accepted => (BroadcastOutcome::Accepted, None),
        Outcome::Rejected { reason } => (BroadcastOutcome::Rejected, Some(reason.clone())),
        Outcome::NotSent { error } => (BroadcastOutcome::NotSent, Some(error.clone())),
    };
    Broadcast {
        sequence: record.sequence,
        txid: record.txid.to_string(),
        outcome,
        reason,
        tx_hex: bitcoin::consensus::encode::serialize_hex(&record.transaction),
    }
}
