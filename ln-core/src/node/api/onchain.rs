//! The on-chain wallet: addresses, funds, withdrawals, and what became of the transactions the
//! node published.

use bitcoin::FeeRate;
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};

use crate::ldk_adapters::BroadcastRecord;
use crate::node::{Error, Node, NodeInner};
use crate::wallet::SendAmount;

/// One unspent wallet output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletOutputInfo {
    /// Transaction id.
    pub txid: bitcoin::Txid,
    /// Output index.
    pub vout: u32,
    /// Value, sat.
    pub amount_sat: u64,
    /// Address, in the chain's encoding.
    pub address: String,
    /// Confirmations (0 = unconfirmed).
    pub confirmations: u32,
}

/// On-chain and channel funds (`listfunds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funds {
    /// Confirmed and spendable, sat.
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed (our own change and incoming), sat.
    pub onchain_unconfirmed_sat: u64,
    /// Coinbase outputs not yet mature, sat.
    pub onchain_immature_sat: u64,
    /// Outputs of closed channels still being claimed or swept to the wallet, sat: our balance,
    /// HTLCs we can claim, and HTLCs of our own payments that come back to us at their timeout
    /// unless the peer claims them first.
    pub pending_sweep_sat: u64,
    /// What the wallet keeps for fee-bumping its anchor channels' force closes, sat: part of the
    /// on-chain balance that `withdraw` and new channels leave alone.
    pub anchor_reserve_sat: u64,
    /// Unspent outputs.
    pub outputs: Vec<WalletOutputInfo>,
    /// Channels with our balance.
    pub channels: Vec<super::ChannelInfo>,
}

/// What a closed channel's balance adds to `pending_sweep_sat`. LDK's
/// `claimable_amount_satoshis` counts an HTLC of our own payment as already paid (0), as its
/// payment was sent; but until the peer claims it on chain it is ours again at its timeout, and
/// an operator watching a force close must see it as still on its way back rather than gone.
/// A cooperative close pays our side to a wallet address: once the closing transaction
/// confirms, the wallet counts it, and LDK's balance of it (kept for 6 confirmations) would count
/// the same coins twice.
fn pending_sweep_of(balance: &lightning::chain::channelmonitor::Balance) -> u64 {
    use lightning::chain::channelmonitor::{Balance, BalanceSource};
    match balance {
        Balance::MaybeTimeoutClaimableHTLC {
            amount_satoshis, ..
        } => *amount_satoshis,
        Balance::ClaimableAwaitingConfirmations {
            source: BalanceSource::CoopClose,
            ..
        } => 0,
        other => other.claimable_amount_satoshis(),
    }
}

/// The confirmation heights at which LDK stops listing the claims among `relevant_txids` (a
/// monitor's transactions awaiting `ANTI_REORG_DELAY` confirmations) that pay our wallet.
fn claims_paying_wallet(
    relevant_txids: &[(bitcoin::Txid, u32, Option<bitcoin::BlockHash>)],
    pays_wallet: impl Fn(bitcoin::Txid) -> bool,
) -> Vec<u32> {
    use lightning::chain::channelmonitor::ANTI_REORG_DELAY;
    relevant_txids
        .iter()
        .filter(|(txid, _, _)| pays_wallet(*txid))
        .map(|(_, height, _)| height + ANTI_REORG_DELAY - 1)
        .collect()
}

/// Whether `balance` is LDK's view of a claim that already paid our wallet: LDK keeps an HTLC
/// claimed from the peer's commitment, or a justice transaction's take, as "awaiting
/// confirmations" for 6 blocks after the claim confirmed, while the wallet counts the claim's
/// output from its first confirmation. (Our own commitment's outputs, and HTLCs claimed from it,
/// wait for `to_self_delay` and go through the sweeper: they never pay the wallet directly.)
fn awaits_a_claim_in(
    balance: &lightning::chain::channelmonitor::Balance,
    claim_heights: &[u32],
) -> bool {
    use lightning::chain::channelmonitor::{Balance, BalanceSource};
    matches!(
        balance,
        Balance::ClaimableAwaitingConfirmations {
            confirmation_height,
            source: BalanceSource::Htlc | BalanceSource::CounterpartyForceClosed,
            ..
        } if claim_heights.contains(confirmation_height)
    )
}

/// Whether a channel of this type has anchor outputs, whose commitments need a child
/// transaction, paid from the wallet, to raise their fee.
fn has_anchors(channel_type: &lightning::types::features::ChannelTypeFeatures) -> bool {
    channel_type.supports_anchors_zero_fee_htlc_tx()
        || channel_type.supports_anchor_zero_fee_commitments()
}

impl NodeInner {
    /// Channels whose force close may need a fee bump from the wallet: open or opening ones
    /// with anchors, and closed ones with anchors whose outputs are still being claimed.
    fn anchor_channels(&self) -> usize {
        let channels = self.channel_manager.list_channels();
        let open = channels
            .iter()
            .filter(|c| c.channel_type.as_ref().is_some_and(has_anchors))
            .count();
        let closing = self
            .chain_monitor
            .list_monitors()
            .into_iter()
            .filter(|id| !channels.iter().any(|c| c.channel_id == *id))
            .filter(|id| {
                self.chain_monitor.get_monitor(*id).is_ok_and(|monitor| {
                    has_anchors(&monitor.channel_type_features())
                        && !monitor.get_claimable_balances().is_empty()
                })
            })
            .count();
        open + closing
    }

    /// What the wallet must keep for the fee bumps of its anchor channels, counting
    /// `new_channels` more about to be opened.
    pub(crate) fn anchor_reserve(&self, new_channels: usize) -> bitcoin::Amount {
        let channels = self.anchor_channels().saturating_add(new_channels);
        bitcoin::Amount::from_sat(self.policy.anchor_reserve_sat(channels))
    }

    /// How many anchor channels a channel this node opens adds: one where it negotiates anchors.
    pub(crate) fn new_anchor_channels(&self) -> usize {
        usize::from(self.policy.anchors)
    }
}

impl Node {
    /// The transactions LDK published lately (funding, commitments, HTLC claims, sweeps; at most
    /// the last 256 broadcasts, rebroadcasts included), oldest first, each with the chain node's
    /// answer. A transaction the chain node rejected for its fee or for dust would never confirm:
    /// this list is where such a policy problem shows.
    pub fn recent_broadcasts(&self) -> Vec<BroadcastRecord> {
        self.inner.broadcaster.recent_broadcasts()
    }

    /// A fresh receive address of the on-chain wallet, in the chain's encoding.
    pub fn new_address(&self) -> Result<String, Error> {
        Ok(self.inner.wallet.new_address()?)
    }

    /// On-chain outputs and balances, and channel balances.
    pub fn list_funds(&self) -> Funds {
        let wallet = &self.inner.wallet;
        let balance = wallet.balance();
        let outputs = wallet
            .list_outputs()
            .into_iter()
            .map(|o| WalletOutputInfo {
                txid: o.outpoint.txid,
                vout: o.outpoint.vout,
                amount_sat: o.amount_sat,
                address: o.address,
                confirmations: o.confirmations,
            })
            .collect();
        let open: Vec<_> = self
            .inner
            .channel_manager
            .list_channels()
            .into_iter()
            .map(|c| c.channel_id)
            .collect();
        let chain_monitor = &self.inner.chain_monitor;
        let mut closed_channels_sat = 0u64;
        for channel_id in chain_monitor.list_monitors() {
            if open.contains(&channel_id) {
                continue;
            }
            let Ok(monitor) = chain_monitor.get_monitor(channel_id) else {
                continue;
            };
            let claims_in_wallet = claims_paying_wallet(&monitor.get_relevant_txids(), |txid| {
                wallet.is_claim_paying_wallet(txid)
            });
            closed_channels_sat += monitor
                .get_claimable_balances()
                .iter()
                .filter(|balance| !awaits_a_claim_in(balance, &claims_in_wallet))
                .map(pending_sweep_of)
                .sum::<u64>();
        }
        let pending_sweep_sat = closed_channels_sat
            + self
                .inner
                .sweeper
                .tracked_spendable_outputs()
                .iter()
                // Once the sweep confirmed, its output is in the wallet already.
                .filter(|o| {
                    !matches!(
                        o.status,
                        lightning::util::sweep::OutputSpendStatus::PendingThresholdConfirmations { .. }
                    )
                })
                .map(|o| descriptor_value(&o.descriptor))
                .sum::<u64>();
        Funds {
            onchain_confirmed_sat: balance.confirmed_sat,
            onchain_unconfirmed_sat: balance.unconfirmed_sat,
            onchain_immature_sat: balance.immature_sat,
            pending_sweep_sat,
            anchor_reserve_sat: self.inner.anchor_reserve(0).to_sat(),
            outputs,
            channels: self.list_channels(),
        }
    }

    /// Sends `amount` to `address` (the chain's encoding) at `feerate_sat_per_vb` (default: the
    /// node's estimate for a normal-priority transaction). Returns the broadcast transaction id.
    pub async fn withdraw(
        &self,
        address: &str,
        amount: SendAmount,
        feerate_sat_per_vb: Option<u64>,
    ) -> Result<bitcoin::Txid, Error> {
        let inner = &self.inner;
        let script = inner
            .params
            .script_for_address(address)
            .map_err(|e| Error::InvalidParameter(format!("address {address:?}: {e}")))?;
        if let SendAmount::Exact(value) = amount {
            if value.to_sat() == 0 {
                return Err(Error::InvalidParameter(
                    "amount_sat must be positive".to_owned(),
                ));
            }
        }
        let floor = inner.params.fee_floor();
        let fee_rate = match feerate_sat_per_vb {
            Some(rate) => {
                let rate = FeeRate::from_sat_per_vb(rate).ok_or_else(|| {
                    Error::InvalidParameter("feerate_sat_per_vb is too large".to_owned())
                })?;
                if rate.to_sat_per_vb_floor() < floor.to_sat_per_vb_floor() {
                    return Err(Error::InvalidParameter(format!(
                        "feerate_sat_per_vb is below this chain's fee floor of {} sat/vB (what every transaction of this node pays at least)",
                        floor.to_sat_per_vb_floor()
                    )));
                }
                rate
            }
            None => FeeRate::from_sat_per_kwu(u64::from(
                inner
                    .fee_estimator
                    .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee),
            ))
            .max(floor),
        };
        let keep = inner.anchor_reserve(0);
        let tx = inner.wallet.build_payment(script, amount, fee_rate, keep)?;
        let txid = tx.compute_txid();
        if let Err(e) = inner.broadcaster.broadcast_now(&tx).await {
            inner.wallet.cancel(&tx);
            return Err(Error::ChainSource(format!(
                "the chain node refused the transaction: {e}"
            )));
        }
        inner.wallet.mark_broadcast(&tx)?;
        tracing::info!(%txid, address, "withdrawal broadcast");
        Ok(txid)
    }

    /// The 24 BIP39 words of the node seed (the one backup of the wallet and node key). As secret
    /// as the seed: whoever sees them can take the node's on-chain funds.
    ///
    /// Reads the node's existing seed file and never creates one: if it is gone, this is an
    /// error (a new seed's words would not be this node's).
    pub fn seed_words(&self) -> Result<String, Error> {
        let seed = crate::seed::load_existing(&self.inner.seed_path)
            .map_err(|e| Error::Store(e.to_string()))?;
        Ok(seed.to_mnemonic())
    }
}

fn descriptor_value(descriptor: &lightning::sign::SpendableOutputDescriptor) -> u64 {
    use lightning::sign::SpendableOutputDescriptor as D;
    match descriptor {
        D::StaticOutput { output, .. } => output.value.to_sat(),
        D::DelayedPaymentOutput(d) => d.output.value.to_sat(),
        D::StaticPaymentOutput(d) => d.output.value.to_sat(),
    }
}

#[cfg(test)]
mod tests {
    use super::{awaits_a_claim_in, claims_paying_wallet, pending_sweep_of};
    use lightning::chain::channelmonitor::Balance;
    use lightning::types::payment::PaymentHash;

    #[test]
    fn htlcs_of_our_own_payments_count_as_on_their_way_back_until_the_peer_claims_them() {
        let htlc = |outbound_payment| Balance::MaybeTimeoutClaimableHTLC {
            amount_satoshis: 100_000,
            claimable_height: 336,
            payment_hash: PaymentHash([7; 32]),
            outbound_payment,
        };
        assert_eq!(pending_sweep_of(&htlc(true)), 100_000);
        assert_eq!(pending_sweep_of(&htlc(false)), 100_000);
        // The peer's HTLC, which is ours only with a preimage we do not have.
        let theirs = Balance::MaybePreimageClaimableHTLC {
            amount_satoshis: 50_000,
            expiry_height: 336,
            payment_hash: PaymentHash([8; 32]),
        };
        assert_eq!(pending_sweep_of(&theirs), 0);
    }

    #[test]
    fn a_confirmed_cooperative_close_is_counted_by_the_wallet_alone() {
        use lightning::chain::channelmonitor::BalanceSource;
        let awaiting = |source| Balance::ClaimableAwaitingConfirmations {
            amount_satoshis: 44_998_326,
            confirmation_height: 120,
            source,
        };
        assert_eq!(pending_sweep_of(&awaiting(BalanceSource::CoopClose)), 0);
        // A force close's outputs still wait for the sweeper.
        assert_eq!(
            pending_sweep_of(&awaiting(BalanceSource::HolderForceClosed)),
            44_998_326
        );
    }

    #[test]
    fn an_htlc_claimed_straight_to_the_wallet_is_counted_by_the_wallet_alone() {
        use bitcoin::hashes::Hash;
        use lightning::chain::channelmonitor::BalanceSource;
        let commitment = bitcoin::Txid::from_byte_array([1; 32]);
        let claim = bitcoin::Txid::from_byte_array([2; 32]);
        // bob's claim of alice's commitment (confirmed at 255) confirmed at 256; LDK lists
        // it as awaiting confirmations until 256 + 5, the commitment's to_remote until 260.
        let relevant = [(commitment, 255, None), (claim, 256, None)];
        let claims = claims_paying_wallet(&relevant, |txid| txid == claim);
        assert_eq!(claims, [261]);
        let awaiting = |confirmation_height, source| Balance::ClaimableAwaitingConfirmations {
            amount_satoshis: 5_000_000,
            confirmation_height,
            source,
        };
        assert!(awaits_a_claim_in(
            &awaiting(261, BalanceSource::Htlc),
            &claims
        ));
        // A justice transaction's take, also paid to the wallet.
        assert!(awaits_a_claim_in(
            &awaiting(261, BalanceSource::CounterpartyForceClosed),
            &claims
        ));
        // The commitment's own output to us goes through the sweeper.
        assert!(!awaits_a_claim_in(
            &awaiting(260, BalanceSource::CounterpartyForceClosed),
            &claims
        ));
        // An HTLC claimed from our own commitment waits for to_self_delay behind a transaction
        // the wallet funded (its fee), which is not a claim paying the wallet.
        let fee_bumped = claims_paying_wallet(&relevant, |_| false);
        assert!(!awaits_a_claim_in(
            &awaiting(256 + 143, BalanceSource::Htlc),
            &fee_bumped
        ));
        assert!(!awaits_a_claim_in(
            &awaiting(261, BalanceSource::HolderForceClosed),
            &claims
        ));
    }
}
