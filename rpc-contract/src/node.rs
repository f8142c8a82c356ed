//! The node itself: `getinfo`, `help`, `rpc.discover` and `stop`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::NodeId;
use crate::{method, Empty, NoParams};

method!(
    /// `getinfo`.
    GetInfo = "getinfo", NoParams => GetInfoResult,
    "Node id, alias, chain, sync state, peer and channel counts.

Errors: none of its own."
);

/// The result of `getinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GetInfoResult {
    /// Our node id.
    pub id: String,
    /// Our alias (may be empty).
    pub alias: String,
    /// `bitcoin` or `qtum`: the chain xlnd runs on (`--chain`).
    pub chain: String,
    /// `mainnet`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Height of the last block the node has processed.
    pub block_height: u32,
    /// Hash of the last block the node has processed.
    pub block_hash: String,
    /// `true` when the last poll of the chain node succeeded and every block was processed. xlnd polls every 2 seconds.
    pub synced_to_chain: bool,
    /// Connected peers.
    pub num_peers: u64,
    /// Channels that are ready and whose peer is connected.
    pub num_active_channels: u64,
    /// Channels waiting for funding confirmations.
    pub num_pending_channels: u64,
    /// Ready channels whose peer is offline.
    pub num_inactive_channels: u64,
    /// Where peers reach us, as `node_id@host:port`: the addresses xlnd announces (the `listen` address, unless it is `0.0.0.0`, which is never announced; then the address it listens on).
    pub p2p_addresses: Vec<String>,
    /// xln version.
    pub version: String,
}

method!(
    /// `help`.
    Help = "help", HelpParams => HelpResult,
    "The method table: every method with its parameters.

The method table that this page describes, as data. `xln-cli` reads it to learn each method's
parameters and their types.

Errors: -32601 (no such method, as for a call of an unknown method). `xln-cli` relies on this: it
asks `help` for a method before calling it, so `xln-cli payy` ends with `error -32601: …`."
);

/// The params of `help`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HelpParams {
    /// Only this method (an unknown one is error -32601).
    pub method: Option<String>,
}

/// The result of `help`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HelpResult {
    /// The methods, in the order of this page.
    pub methods: Vec<MethodHelp>,
}

/// One method in `help`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MethodHelp {
    /// The method's name.
    pub name: String,
    /// What it does: a summary line, then details.
    pub description: String,
    /// Its parameters, in positional order.
    pub params: Vec<ParamHelp>,
    /// The result's fields, one line each: `path (type): meaning`.
    pub result: String,
}

/// One parameter in `help`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParamHelp {
    /// Its name.
    pub name: String,
    /// `string`, `integer`, `boolean`, `integer|all` or `integer|any`.
    #[serde(rename = "type")]
    pub param_type: String,
    /// Whether the call fails without it.
    pub required: bool,
    /// What it means.
    pub description: String,
}

impl From<&crate::MethodDoc> for MethodHelp {
    fn from(doc: &crate::MethodDoc) -> Self {
        MethodHelp {
            name: doc.name.clone(),
            description: doc.description.clone(),
            params: doc
                .params
                .iter()
                .map(|p| ParamHelp {
                    name: p.name.clone(),
                    param_type: p.param_type.clone(),
                    required: p.required,
                    description: p.description.clone(),
                })
                .collect(),
            result: doc.result_text.clone(),
        }
    }
}

method!(
    /// `rpc.discover`.
    Discover = "rpc.discover", NoParams => serde_json::Value,
    "This API as an OpenRPC 1.2.6 document, generated from the same types as this page.

Each method's params and result carry their JSON Schema; result types shared between methods are
under `components.schemas`. The WebSocket subscriptions, which OpenRPC has no notion of, are
listed under `x-subscriptions` with the schema of their notifications.

Errors: none of its own."
);

method!(
    /// `stop`.
    Stop = "stop", NoParams => Empty,
    "Shut the daemon down cleanly.

The answer goes out, then xlnd stops the RPC server, disconnects peers, saves its state, deletes
`rpc.cookie` and `rpc.url`, and exits with status 0."
);

method!(
    /// `signmessage`.
    SignMessage = "signmessage", SignMessageParams => SignMessageResult,
    "Sign a message with the node key, in the zbase32 format LND and Core Lightning use.

`zbase32(header ‖ r ‖ s)` of an ECDSA signature over
`SHA256(SHA256(\"Lightning Signed Message:\" ‖ message))`, the header byte being 31 plus the recovery
id. Anyone can check it with `checkmessage`, `lncli verifymessage` or Core Lightning's
`checkmessage`, and learn this node's id from it.

Errors: -32602 (message too long)."
);

/// The params of `signmessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignMessageParams {
    /// The message (its UTF-8 bytes are signed), at most 65535 bytes.
    pub message: String,
}

/// The result of `signmessage`, with Core Lightning's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignMessageResult {
    /// The signature to give out, zbase32.
    pub zbase: String,
    /// `r ‖ s`, 128 hex characters.
    pub signature: String,
    /// The recovery id, 2 hex characters, `00` to `03`.
    pub recid: String,
}

method!(
    /// `checkmessage`.
    CheckMessage = "checkmessage", CheckMessageParams => CheckMessageResult,
    "Check a zbase32 message signature: against pubkey, or without it, that the signer is a node of our gossip graph.

The signer's key is recovered from the signature. With `pubkey`, `verified` is true if it is that
key. Without, `verified` is true only if the signer is a node of our gossip graph (as
`listnodes` shows): a signature by a key anyone can make proves nothing, while a node of the
graph has public channels. This is Core Lightning's rule, after LND's (which also asks for a node
of its graph), with one difference: Core Lightning answers a signer outside its graph with error
1301, xln with `verified: false` and the key.

Errors: -32602 (`zbase` is not zbase32, or not 65 bytes, or its header byte is not 31 to 34;
`pubkey` is not a node id; message too long)."
);

/// The params of `checkmessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckMessageParams {
    /// The message signed.
    pub message: String,
    /// The zbase32 signature.
    pub zbase: String,
    /// The node id that should have signed it.
    pub pubkey: Option<NodeId>,
}

/// The result of `checkmessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckMessageResult {
    /// The key that signed, recovered from the signature; `null` if the signature recovers no key.
    pub pubkey: Option<String>,
    /// Signed by `pubkey`, or (without it) by a node of our gossip graph.
    pub verified: bool,
}
