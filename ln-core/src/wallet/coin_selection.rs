//! bdk's coin selection with the chain's dust threshold for the change output.
//!
//! bdk decides whether leftover value becomes a change output with Bitcoin's dust rule (3 sat/vB).
//! Chains with a higher dust relay feerate (Qtum) would then get change outputs their nodes refuse
//! to relay; this wrapper re-decides with [`ChainParams::dust_threshold`]. On Bitcoin both agree.

use bdk_wallet::coin_selection::{
    CoinSelectionAlgorithm, CoinSelectionResult, DefaultCoinSelectionAlgorithm, Excess,
    InsufficientFunds,
};
use bdk_wallet::WeightedUtxo;
use bitcoin::{Amount, FeeRate, Script};
use rand_core::RngCore;

use crate::chain::ChainParams;

/// bdk's default algorithm (branch and bound, then random draw), change decided by the chain's
/// dust threshold.
#[derive(Debug)]
pub(super) struct ChainDustCoinSelection<'a> {
    inner: DefaultCoinSelectionAlgorithm,
    params: &'a ChainParams,
}

impl<'a> ChainDustCoinSelection<'a> {
    pub(super) fn new(params: &'a ChainParams) -> Self {
        Self {
            inner: DefaultCoinSelectionAlgorithm::default(),
            params,
        }
    }
}

impl CoinSelectionAlgorithm for ChainDustCoinSelection<'_> {
    fn coin_select<R: RngCore>(
        &self,
        required_utxos: Vec<WeightedUtxo>,
        optional_utxos: Vec<WeightedUtxo>,
        fee_rate: FeeRate,
        target_amount: Amount,
        drain_script: &Script,
        rand: &mut R,
    ) -> Result<CoinSelectionResult, InsufficientFunds> {
        let mut result = self.inner.coin_select(
            required_utxos,
            optional_utxos,
            fee_rate,
            target_amount,
            drain_script,
            rand,
        )?;
        let dust = self.params.dust_threshold(drain_script);
        result.excess = decide_change(result.excess, dust);
        Ok(result)
    }
}

/// The same decision as bdk's `decide_change`, against `dust` instead of Bitcoin's threshold.
fn decide_change(excess: Excess, dust: Amount) -> Excess {
    let (remaining_amount, change_fee) = match excess {
        Excess::Change { amount, fee } => (amount + fee, fee),
        Excess::NoChange {
            remaining_amount,
            change_fee,
            ..
        } => (remaining_amount, change_fee),
    };
    let change = remaining_amount
        .checked_sub(change_fee)
        .unwrap_or(Amount::ZERO);
    if change >= dust && change > Amount::ZERO {
        Excess::Change {
            amount: change,
            fee: change_fee,
        }
    } else {
        Excess::NoChange {
            dust_threshold: dust,
            remaining_amount,
            change_fee,
        }
    }
}
