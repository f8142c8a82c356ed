//! The on-chain wallet: `newaddr`, `listfunds`, `withdraw`, `listbroadcasts`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{SatOrAll, Uint};
use crate::{method, NoParams};

method!(
    /// `newaddr`.
    NewAddr = "newaddr", NoParams => NewAddrResult,
    "A fresh on-chain receive address of the node's wallet.

Errors: 600 (the wallet failed, including its store)."
);

/// The result of `newaddr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewAddrResult {
    /// A new receive address of the node's on-chain wallet (a native segwit address, `bcrt1…` on regtest).
    pub address: String,
}

method!(
    /// `listfunds`.
    ListFunds = "listfunds", NoParams => ListFundsResult,
    "On-chain wallet outputs and balances, and the node's balance in each channel.

Only confirmed funds and change of our own transactions are spent. Someone else's unconfirmed
payment to us is not spent until it confirms.

Errors: none of its own."
);

/// The result of `listfunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListFundsResult {
    /// Confirmed, spendable on-chain funds. Mined coins count once mature: 100 more blocks on top of them on Bitcoin.
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed funds: change of our own transactions and incoming payments.
    pub onchain_unconfirmed_sat: u64,
    /// Mined coins that are not mature yet.
    pub onchain_immature_sat: u64,
    /// Funds of closed channels that are still being claimed or swept to the wallet, HTLCs of
    /// our own payments that return at their timeout included.
    pub pending_sweep_sat: u64,
    /// Part of the on-chain funds the wallet keeps to pay the fee bumps of anchor channels'
    /// force closes (10,000 sat per open or still-claiming anchor channel, for at most ten, by
    /// default; `--anchor-reserve-per-channel-sat`): `withdraw` and new channels leave it.
    pub anchor_reserve_sat: u64,
    /// The wallet's unspent outputs.
    pub outputs: Vec<WalletOutput>,
    /// One entry per channel.
    pub channels: Vec<FundsChannel>,
}

/// One unspent output of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WalletOutput {
    /// Transaction id.
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Its amount.
    pub amount_sat: u64,
    /// Its address.
    pub address: String,
    /// Confirmations (0 = unconfirmed).
    pub confirmations: u32,
}

/// Our balance in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsChannel {
    /// Channel id.
    pub channel_id: String,
    /// The peer's node id.
    pub peer_id: String,
    /// Our balance.
    pub our_amount_msat: u64,
    /// Channel capacity.
    pub capacity_sat: u64,
    /// As in `listchannels`.
    pub state: crate::channels::ChannelState,
}

method!(
    /// `withdraw`.
    Withdraw = "withdraw", WithdrawParams => WithdrawResult,
    "Send on-chain funds from the wallet to an address.

Returns once the chain node has accepted the transaction.

The transaction never pays less than the chain's fee floor (`ChainParams::fee_floor`): 253 sat per
1000 weight units on Bitcoin (just over 1 sat/vB), 100,749 on Qtum (just over 402 sat/vB). A lower
rate, given or estimated, is raised to it, so `feerate_sat_per_vb` 1 on Bitcoin pays 253 sat/kWU.

With anchor channels the wallet keeps `listfunds`' `anchor_reserve_sat`, as LND does: `all` sends
everything else (the reserve goes to a change output of its own), and an amount that would leave
less is refused with error 300, which says how much can be sent.

Errors: -32602 (bad or foreign address, amount 0, amount below the dust threshold, fee rate too low
or too high), 300 (not enough spendable funds, or not without the anchor reserve), 600 (the wallet
could not build, sign or store the transaction), 700 (the chain node refused the transaction; the message has its reason)."
);

/// The params of `withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawParams {
    /// Destination address of this node's chain and network.
    pub address: String,
    /// Amount in satoshis (at most 21,000,000 coins), or "all" to send everything the wallet can spend, less fees and the anchor reserve (`listfunds`' `anchor_reserve_sat`).
    pub amount_sat: SatOrAll,
    /// Fee rate in sat/vB, at most 1,000,000 (default: the node's estimate for confirmation within about 2 hours); at least the chain's fee floor rounded down to whole sat/vB: 1 on Bitcoin, 402 on Qtum.
    pub feerate_sat_per_vb: Option<Uint<1_000_000>>,
}

/// The result of `withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawResult {
    /// The transaction's id.
    pub txid: String,
}

method!(
    /// `listbroadcasts`.
    ListBroadcasts = "listbroadcasts", NoParams => ListBroadcastsResult,
    "The node's last 256 transaction broadcasts (funding, closes, claims, sweeps, withdrawals, rebroadcasts included), oldest first, with the chain node's answer.

LDK rebroadcasts its claims every block until they are deep. This is where a transaction the chain
node refuses (fee below its relay floor, dust, a policy of the chain) shows before it is missed on
chain.

Errors: none of its own."
);

/// The result of `listbroadcasts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListBroadcastsResult {
    /// The broadcasts, oldest first.
    pub broadcasts: Vec<Broadcast>,
}

/// One broadcast of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Broadcast {
    /// Position among all broadcasts since the daemon started (0, 1, 2, ...); a gap between two polls means entries were dropped from the list.
    pub sequence: u64,
    /// The transaction's id (one txid can appear many times).
    pub txid: String,
    /// What the chain node answered.
    pub outcome: BroadcastOutcome,
    /// The chain node's reject reason, or why it could not be asked; `null` when accepted. A rebroadcast refused with `bad-txns-inputs-missingorspent` or `txn-mempool-conflict` is normal: another transaction (often the peer's) already spent the same output. So is `non-BIP68-final` on a sweep after a reorg of 6 blocks or more: it is sent again until its parent is deep enough.
    pub reason: Option<String>,
    /// The transaction as sent, hex.
    pub tx_hex: String,
}

/// What the chain node answered to a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastOutcome {
    /// In the mempool or already known.
    Accepted,
    /// The chain node refused it.
    Rejected,
    /// The chain node could not be asked.
    NotSent,
}
