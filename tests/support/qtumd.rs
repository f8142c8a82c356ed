//! A throwaway regtest `qtumd` (Qtum Core) for the Qtum end-to-end suite.
//!
//! qtumd is a Bitcoin Core fork and takes the same command line, so it runs under [`Bitcoind`]
//! with other binaries, `-staking=0` (a regtest wallet would otherwise mint proof-of-stake blocks
//! of its own, qtum-facts §5), no wallet and coinbases paid to a `qcrt1` address. No Qtum Core
//! package exists in our registries: the suite runs when `QTUMD` names a qtumd binary and is
//! skipped otherwise.

use std::path::PathBuf;

use ln_core::ChainParams;

use crate::bitcoin_core::BitcoinCoreBinaries;
use crate::bitcoind::{Bitcoind, BitcoindOptions};
use crate::error::TestEnvError;

/// Environment variable naming the qtumd binary; the Qtum suite is skipped without it.
pub const QTUMD_ENV: &str = "QTUMD";
/// Environment variable naming qtum-cli (default: `qtum-cli` beside qtumd).
pub const QTUM_CLI_ENV: &str = "QTUM_CLI";

/// The qtumd and qtum-cli to run, if `QTUMD` is set.
pub fn qtum_core_binaries() -> Option<BitcoinCoreBinaries> {
    let qtumd = PathBuf::from(std::env::var_os(QTUMD_ENV)?);
    let qtum_cli = std::env::var_os(QTUM_CLI_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| qtumd.with_file_name("qtum-cli"));
    Some(BitcoinCoreBinaries {
        bitcoind: qtumd,
        bitcoin_cli: qtum_cli,
    })
}

/// The regtest address qtumd's test blocks pay to: P2WSH of `OP_TRUE` in Qtum's encoding
/// (`qcrt1…`), the same burn script as [`crate::burn_address`] on Bitcoin.
pub fn qtum_burn_address() -> Result<String, TestEnvError> {
    ChainParams::qtum_regtest()
        .address_for_script(&crate::burn_script())
        .map_err(|e| TestEnvError::UnexpectedOutput {
            command: "encoding the Qtum burn address".to_owned(),
            reason: e.to_string(),
        })
}

/// Starts qtumd in regtest with `binaries` (see [`qtum_core_binaries`]).
pub fn start_qtumd(binaries: BitcoinCoreBinaries) -> Result<Bitcoind, TestEnvError> {
    Bitcoind::start_with(BitcoindOptions {
        // xlnd keeps its own wallet: qtumd needs none, and without one its wallet options
        // (like the -fallbackfee every test node gets) are never checked.
        extra_args: vec!["-staking=0".to_owned(), "-disablewallet=1".to_owned()],
        binaries: Some(binaries),
        mining_address: Some(qtum_burn_address()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_address_is_a_qtum_regtest_address_of_the_burn_script() -> Result<(), TestEnvError> {
        let address = qtum_burn_address()?;
        assert!(address.starts_with("qcrt1q"), "{address}");
        let script = ChainParams::qtum_regtest().script_for_address(&address);
        assert_eq!(script.ok(), Some(crate::burn_script()));
        Ok(())
    }
}
