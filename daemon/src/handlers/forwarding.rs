//! `setchannel` (the forwarding policy of channels) and `listforwards` (what was forwarded and
//! earned): typed params and results, one handler each.

use jsonrpsee::types::ErrorObjectOwned;
use ln_core::node::{
    format_short_channel_id, ChannelForwardingPolicy, ForwardFilter, ForwardRecord, ForwardStatus,
    ForwardingPolicyUpdate, Node,
};
use serde::Serialize;
use serde_json::Value;

use super::{rpc_error, to_json};
use crate::methods::{invalid, Args};

/// The params of `setchannel`, range-checked (the node checks them against the chain).
struct SetChannelParams {
    id: String,
    update: ForwardingPolicyUpdate,
}

impl SetChannelParams {
    fn from_args(args: &Args) -> Result<Self, ErrorObjectOwned> {
        let u32_param = |name: &str| -> Result<Option<u32>, ErrorObjectOwned> {
            Ok(args
                .uint(name, u64::from(u32::MAX))?
                .and_then(|value| u32::try_from(value).ok()))
        };
        Ok(Self {
            id: args.req_str("id")?,
            update: ForwardingPolicyUpdate {
                fee_base_msat: u32_param("fee_base_msat")?,
                fee_proportional_millionths: u32_param("fee_proportional_millionths")?,
                cltv_expiry_delta: args
                    .uint("cltv_expiry_delta", u64::from(u16::MAX))?
                    .and_then(|value| u16::try_from(value).ok()),
                htlc_minimum_msat: args.uint("htlc_minimum_msat", u64::MAX)?,
                htlc_maximum_msat: args.uint("htlc_maximum_msat", u64::MAX)?,
            },
        })
    }
}

/// One channel in the answer of `setchannel`.
#[derive(Serialize)]
struct ChannelPolicyJson {
    channel_id: String,
    short_channel_id: Option<String>,
    peer_id: String,
    fee_base_msat: u32,
    fee_proportional_millionths: u32,
    cltv_expiry_delta: u16,
    htlc_minimum_msat: Option<u64>,
    htlc_maximum_msat: Option<u64>,
}

impl From<&ChannelForwardingPolicy> for ChannelPolicyJson {
    fn from(policy: &ChannelForwardingPolicy) -> Self {
        Self {
            channel_id: policy.channel_id.clone(),
            short_channel_id: policy.short_channel_id.map(format_short_channel_id),
            peer_id: policy.peer_id.to_string(),
            fee_base_msat: policy.fee_base_msat,
            fee_proportional_millionths: policy.fee_proportional_millionths,
            cltv_expiry_delta: policy.cltv_expiry_delta,
            htlc_minimum_msat: policy.htlc_minimum_msat,
            htlc_maximum_msat: policy.htlc_maximum_msat,
        }
    }
}

#[derive(Serialize)]
struct SetChannelResult {
    channels: Vec<ChannelPolicyJson>,
}

/// `setchannel id [fee_base_msat] [fee_proportional_millionths] [cltv_expiry_delta] ...`
pub fn setchannel(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let params = SetChannelParams::from_args(args)?;
    let policies = node
        .set_forwarding_policy(&params.id, &params.update)
        .map_err(rpc_error)?;
    to_json(&SetChannelResult {
        channels: policies.iter().map(ChannelPolicyJson::from).collect(),
    })
}

/// The params of `listforwards`.
fn forward_filter(args: &Args) -> Result<ForwardFilter, ErrorObjectOwned> {
    let status = match args.str("status")?.as_deref() {
        None => None,
        Some("settled") => Some(ForwardStatus::Settled),
        Some("failed") => Some(ForwardStatus::Failed),
        Some(other) => {
            return Err(invalid(format!(
                "status must be \"settled\" or \"failed\", not {other:?}"
            )))
        }
    };
    Ok(ForwardFilter {
        status,
        since: args.uint("since", u64::MAX)?,
        until: args.uint("until", u64::MAX)?,
    })
}

/// One forward in the answer of `listforwards`.
#[derive(Serialize)]
struct ForwardJson {
    in_channel_id: Option<String>,
    out_channel_id: Option<String>,
    in_msat: Option<u64>,
    out_msat: Option<u64>,
    /// The same as `out_msat`, under the name earlier versions answered with.
    out_amount_msat: Option<u64>,
    fee_msat: Option<u64>,
    claimed_on_chain: bool,
    resolved_at: u64,
    status: ForwardStatus,
    failure_reason: Option<String>,
}

impl From<&ForwardRecord> for ForwardJson {
    fn from(record: &ForwardRecord) -> Self {
        Self {
            in_channel_id: record.in_channel_id.clone(),
            out_channel_id: record.out_channel_id.clone(),
            in_msat: record.in_msat(),
            out_msat: record.out_amount_msat,
            out_amount_msat: record.out_amount_msat,
            fee_msat: record.fee_msat,
            claimed_on_chain: record.claimed_on_chain,
            resolved_at: record.resolved_at,
            status: record.status,
            failure_reason: record.failure_reason.clone(),
        }
    }
}

#[derive(Serialize)]
struct ListForwardsResult {
    forwards: Vec<ForwardJson>,
    count: usize,
    total_fee_msat: u64,
    total_out_msat: u64,
}

/// `listforwards [status] [since] [until]`
pub fn listforwards(node: &Node, args: &Args) -> Result<Value, ErrorObjectOwned> {
    let history = node
        .forward_history(&forward_filter(args)?)
        .map_err(rpc_error)?;
    to_json(&ListForwardsResult {
        count: history.forwards.len(),
        forwards: history.forwards.iter().map(ForwardJson::from).collect(),
        total_fee_msat: history.total_fee_msat,
        total_out_msat: history.total_out_msat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Args {
        match value {
            Value::Object(map) => Args(map),
            _ => Args(serde_json::Map::new()),
        }
    }

    #[test]
    fn setchannel_params_are_range_checked_before_the_node_sees_them() {
        let parsed = SetChannelParams::from_args(&args(json!({
            "id": "all", "fee_base_msat": 1000, "cltv_expiry_delta": "80"
        })));
        let parsed = parsed.map(|p| (p.id, p.update));
        assert_eq!(
            parsed.ok(),
            Some((
                "all".to_owned(),
                ForwardingPolicyUpdate {
                    fee_base_msat: Some(1000),
                    cltv_expiry_delta: Some(80),
                    ..Default::default()
                }
            ))
        );
        for bad in [
            json!({"id": "all", "fee_base_msat": 4_294_967_296u64}),
            json!({"id": "all", "fee_proportional_millionths": -1}),
            json!({"id": "all", "cltv_expiry_delta": 65_536}),
            json!({"id": "all", "htlc_minimum_msat": "lots"}),
        ] {
            let error = SetChannelParams::from_args(&args(bad.clone())).err();
            assert_eq!(error.map(|e| e.code()), Some(-32602), "{bad}");
        }
    }

    #[test]
    fn listforwards_status_must_be_settled_or_failed() {
        let filter = forward_filter(&args(json!({"status": "failed", "since": 5})));
        assert_eq!(
            filter.ok(),
            Some(ForwardFilter {
                status: Some(ForwardStatus::Failed),
                since: Some(5),
                until: None,
            })
        );
        let error = forward_filter(&args(json!({"status": "offered"}))).err();
        assert_eq!(error.map(|e| e.code()), Some(-32602));
    }
}
