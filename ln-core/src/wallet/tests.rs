//! Wallet tests on hand-built regtest blocks fed through `chain::Listen`; no node, no network.

use bitcoin::absolute::LockTime;
use bitcoin::bip32::DerivationPath;
use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hash_types::TxMerkleNode;
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::secp256k1::Secp256k1;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, CompactTarget, CompressedPublicKey, FeeRate, Network, OutPoint, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, WScriptHash, Witness,
};
use lightning::chain::{BestBlock, Listen};
use lightning::sign::ChangeDestinationSourceSync;

use super::persist::ChangeSetLog;
use super::{OnchainWallet, SendAmount, WalletBalance, WalletError};
use crate::chain::ChainParams;
use crate::seed::NodeSeed;
use crate::store::SledStore;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The seed whose entropy is all zeros.
const SEED_WORDS: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
     abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
     abandon abandon abandon art";
/// The seed whose entropy is all ones.
const OTHER_SEED_WORDS: &str = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo \
     zoo zoo zoo zoo zoo zoo zoo vote";

const COINBASE_VALUE: Amount = Amount::from_sat(50 * 100_000_000);
const FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(500); // 2 sat/vB

fn seed() -> Result<NodeSeed, WalletError> {
    NodeSeed::from_mnemonic(SEED_WORDS).map_err(|e| WalletError::Descriptor(e.to_string()))
}

/// A script that is not the wallet's.
fn stranger() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([7; 20]))
}

/// A regtest chain built block by block; `blocks[h]` is the block at height `h`.
struct TestChain {
    blocks: Vec<Block>,
}

impl TestChain {
    fn new() -> Self {
        Self::with_genesis(genesis_block(Network::Regtest))
    }

    /// A chain whose genesis block LDK is given as `genesis`: on Qtum, a synthetic header whose
    /// hash is not the genesis hash the wallet knows.
    fn with_genesis(genesis: Block) -> Self {
        Self {
            blocks: vec![genesis],
        }
    }

    fn height(&self) -> u32 {
        u32::try_from(self.blocks.len()).unwrap_or(u32::MAX) - 1
    }

    fn tip(&self) -> BestBlock {
        let tip = self
            .blocks
            .last()
            .map(Block::block_hash)
            .unwrap_or_else(|| genesis_block(Network::Regtest).block_hash());
        BestBlock::new(tip, self.height())
    }

    /// Appends a block whose coinbase pays `coinbase_to` (or nobody we know) and that confirms
    /// `txs`, and connects it to `wallet`. `salt` makes competing blocks at one height differ.
    fn mine(
        &mut self,
        wallet: &OnchainWallet,
        coinbase_to: Option<&ScriptBuf>,
        txs: Vec<Transaction>,
        salt: u8,
    ) -> Block {
        let height = self.height() + 1;
        let coinbase = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                // BIP34 height, and the salt: every coinbase gets its own txid.
                script_sig: Builder::new()
                    .push_int(i64::from(height))
                    .push_int(i64::from(salt))
                    .into_script(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: COINBASE_VALUE,
                script_pubkey: coinbase_to.cloned().unwrap_or_else(stranger),
            }],
        };
        let header = Header {
            version: Version::TWO,
            prev_blockhash: self.tip().block_hash,
            merkle_root: TxMerkleNode::from_byte_array([salt; 32]),
            time: 1_700_000_000 + height,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: u32::from(salt),
        };
        let mut txdata = vec![coinbase];
        txdata.extend(txs);
        let block = Block { header, txdata };
        wallet.block_connected(&block, height);
        self.blocks.push(block.clone());
        block
    }

    fn mine_empty(&mut self, wallet: &OnchainWallet, count: u32) {
        for _ in 0..count {
            self.mine(wallet, None, Vec::new(), 0);
        }
    }

    /// Drops the blocks above `height` and tells `wallet`, as the poller does on a reorg.
    fn disconnect_to(&mut self, wallet: &OnchainWallet, height: u32) {
        self.blocks.truncate(height as usize + 1);
        wallet.blocks_disconnected(self.tip());
    }

    /// Replays every block above genesis into `wallet`.
    fn replay(&self, wallet: &OnchainWallet) {
        for (height, block) in self.blocks.iter().enumerate().skip(1) {
            wallet.block_connected(block, u32::try_from(height).unwrap_or(u32::MAX));
        }
    }
}

/// A transaction from someone else paying `value` to `script`.
fn payment_to(script: &ScriptBuf, value: Amount, nonce: u8) -> Transaction {
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([nonce; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: script.clone(),
        }],
    }
}

fn open_wallet(store: &SledStore) -> Result<OnchainWallet, WalletError> {
    OnchainWallet::load_or_create(&seed()?, &ChainParams::bitcoin_regtest(), store)
}

/// A wallet in a fresh store (kept alive by the returned directory).
fn new_wallet(
    params: &ChainParams,
) -> Result<(OnchainWallet, tempfile::TempDir), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let wallet = OnchainWallet::load_or_create(&seed()?, params, &store)?;
    Ok((wallet, dir))
}

/// The wallet's next receive script.
fn receive_script(wallet: &OnchainWallet) -> Result<ScriptBuf, Box<dyn std::error::Error>> {
    Ok(ChainParams::bitcoin_regtest().script_for_address(&wallet.new_address()?)?)
}

/// A wallet holding one confirmed 1 BTC output received from someone else.
fn funded_wallet(
    params: &ChainParams,
) -> Result<(OnchainWallet, TestChain, tempfile::TempDir), Box<dyn std::error::Error>> {
    let (wallet, dir) = new_wallet(params)?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    let funding = payment_to(&script, Amount::ONE_BTC, 1);
    chain.mine(&wallet, None, vec![funding], 0);
    Ok((wallet, chain, dir))
}

fn is_mine(wallet: &OnchainWallet, script: &ScriptBuf) -> bool {
    wallet.lock().wallet.is_mine(script.clone())
}

#[test]
fn new_address_is_bech32_with_the_chains_hrp_and_never_repeats() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let first = wallet.new_address()?;
    let second = wallet.new_address()?;
    assert!(first.starts_with("bcrt1q"), "{first}");
    assert_ne!(first, second);
    Ok(())
}

#[test]
fn first_address_is_the_seeds_bip84_key_at_the_chains_coin_type() -> TestResult {
    let params = ChainParams::bitcoin_regtest();
    let (wallet, _dir) = new_wallet(&params)?;
    let secp = Secp256k1::new();
    let master = seed()?.wallet_master_key(params.ldk_network.into())?;
    let path: DerivationPath = "m/84'/1'/0'/0/0".parse()?;
    let key = master.derive_priv(&secp, &path)?.to_priv();
    let expected =
        ScriptBuf::new_p2wpkh(&CompressedPublicKey::from_private_key(&secp, &key)?.wpubkey_hash());
    assert_eq!(params.address_for_script(&expected)?, wallet.new_address()?);
    Ok(())
}

#[test]
fn coinbase_is_immature_until_the_chains_maturity_then_confirmed() -> TestResult {
    let params = ChainParams::bitcoin_regtest();
    let (wallet, _dir) = new_wallet(&params)?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    chain.mine(&wallet, Some(&script), Vec::new(), 0);
    let immature = WalletBalance {
        immature_sat: COINBASE_VALUE.to_sat(),
        ..WalletBalance::default()
    };
    assert_eq!(wallet.balance(), immature);

    // Tip 100 = coinbase height + 99: bdk's own rule would already spend it, ours does not.
    chain.mine_empty(&wallet, 99);
    assert_eq!(wallet.sync_height(), 100);
    assert_eq!(wallet.balance(), immature);
    assert!(matches!(
        wallet.build_payment(
            stranger(),
            SendAmount::Exact(Amount::ONE_BTC),
            FEE_RATE,
            Amount::ZERO
        ),
        Err(WalletError::InsufficientFunds {
            available_sat: 0,
            ..
        })
    ));

    chain.mine_empty(&wallet, 1);
    let confirmed = WalletBalance {
        confirmed_sat: COINBASE_VALUE.to_sat(),
        ..WalletBalance::default()
    };
    assert_eq!(wallet.balance(), confirmed);
    let outputs = wallet.list_outputs();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].confirmations, 101);
    assert!(!outputs[0].is_change);
    assert!(outputs[0].address.starts_with("bcrt1q"));
    Ok(())
}

#[test]
fn coinbase_maturity_comes_from_the_chain_params_not_bitcoins_100() -> TestResult {
    let mut params = ChainParams::bitcoin_regtest();
    params.coinbase_maturity = 150;
    let (wallet, _dir) = new_wallet(&params)?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    chain.mine(&wallet, Some(&script), Vec::new(), 0);
    chain.mine_empty(&wallet, 149);
    assert_eq!(wallet.balance().immature_sat, COINBASE_VALUE.to_sat());
    chain.mine_empty(&wallet, 1);
    assert_eq!(wallet.balance().confirmed_sat, COINBASE_VALUE.to_sat());
    Ok(())
}

#[test]
fn payment_spends_mature_coinbase_with_change_back_to_the_wallet() -> TestResult {
    let params = ChainParams::bitcoin_regtest();
    let (wallet, _dir) = new_wallet(&params)?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    chain.mine(&wallet, Some(&script), Vec::new(), 0);
    chain.mine_empty(&wallet, 100);
    let before = wallet.balance();

    let tx = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::ONE_BTC),
        FEE_RATE,
        Amount::ZERO,
    )?;
    assert_eq!(tx.input.len(), 1);
    assert!(tx.input.iter().all(|input| !input.witness.is_empty()));
    let paid: Vec<&TxOut> = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == stranger())
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].value, Amount::ONE_BTC);
    let change: Vec<Amount> = tx
        .output
        .iter()
        .filter(|o| is_mine(&wallet, &o.script_pubkey))
        .map(|o| o.value)
        .collect();
    assert_eq!(change.len(), 1);
    let fee = COINBASE_VALUE - Amount::ONE_BTC - change[0];
    assert!(
        fee >= FEE_RATE * tx.weight() && fee < Amount::from_sat(1_000),
        "fee {fee}"
    );
    assert_eq!(
        wallet.balance(),
        before,
        "a built transaction changes nothing"
    );

    wallet.mark_broadcast(&tx)?;
    let pending = WalletBalance {
        unconfirmed_sat: change[0].to_sat(),
        ..WalletBalance::default()
    };
    assert_eq!(wallet.balance(), pending);
    let outputs = wallet.list_outputs();
    assert_eq!(outputs.len(), 1);
    assert!(outputs[0].is_change);
    assert_eq!(outputs[0].confirmations, 0);

    chain.mine(&wallet, None, vec![tx], 0);
    assert_eq!(wallet.balance().confirmed_sat, change[0].to_sat());
    assert_eq!(wallet.list_outputs()[0].confirmations, 1);
    Ok(())
}

#[test]
fn funding_transaction_pays_the_exact_value_to_the_channel_script() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let funding_script = ScriptBuf::new_p2wsh(&WScriptHash::from_byte_array([3; 32]));
    let value = Amount::from_sat(250_000);
    let tx = wallet.build_funding(funding_script.clone(), value, FEE_RATE, Amount::ZERO)?;
    let funding: Vec<&TxOut> = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == funding_script)
        .collect();
    assert_eq!(funding.len(), 1);
    assert_eq!(funding[0].value, value);
    Ok(())
}

#[test]
fn unconfirmed_change_of_our_own_transaction_can_be_spent() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let amount = SendAmount::Exact(Amount::from_sat(10_000));
    let first = wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO)?;
    wallet.mark_broadcast(&first)?;
    let second = wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO)?;
    assert_eq!(second.input[0].previous_output.txid, first.compute_txid());
    Ok(())
}

#[test]
fn someone_elses_unconfirmed_payment_counts_but_is_spent_only_once_confirmed() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let incoming = payment_to(&receive_script(&wallet)?, Amount::ONE_BTC, 9);
    wallet.mark_broadcast(&incoming)?;
    let pending = WalletBalance {
        unconfirmed_sat: Amount::ONE_BTC.to_sat(),
        ..WalletBalance::default()
    };
    assert_eq!(wallet.balance(), pending);
    let amount = SendAmount::Exact(Amount::from_sat(10_000));
    assert!(matches!(
        wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO),
        Err(WalletError::InsufficientFunds {
            available_sat: 0,
            ..
        })
    ));
    TestChain::new().mine(&wallet, None, vec![incoming], 0);
    assert!(wallet
        .build_payment(stranger(), amount, FEE_RATE, Amount::ZERO)
        .is_ok());
    Ok(())
}

#[test]
fn insufficient_funds_reports_needed_and_available_sat() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let result = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(150_000_000)),
        FEE_RATE,
        Amount::ZERO,
    );
    match result {
        Err(WalletError::InsufficientFunds {
            needed_sat,
            available_sat,
        }) => {
            assert!(
                needed_sat > 150_000_000,
                "needed {needed_sat} includes fees"
            );
            assert_eq!(available_sat, Amount::ONE_BTC.to_sat());
        }
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    let (empty, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    assert!(matches!(
        empty.build_payment(stranger(), SendAmount::All, FEE_RATE, Amount::ZERO),
        Err(WalletError::InsufficientFunds {
            available_sat: 0,
            ..
        })
    ));
    Ok(())
}

#[test]
fn payment_below_the_dust_threshold_is_refused() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let result = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(293)),
        FEE_RATE,
        Amount::ZERO,
    );
    assert!(matches!(
        result,
        Err(WalletError::BelowDust {
            amount_sat: 293,
            dust_sat: 294
        })
    ));
    assert!(wallet
        .build_payment(
            stranger(),
            SendAmount::Exact(Amount::from_sat(294)),
            FEE_RATE,
            Amount::ZERO
        )
        .is_ok());
    Ok(())
}

#[test]
fn sending_all_drains_the_wallet_into_one_output() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let tx = wallet.build_payment(stranger(), SendAmount::All, FEE_RATE, Amount::ZERO)?;
    assert_eq!(tx.output.len(), 1);
    let fee = Amount::ONE_BTC - tx.output[0].value;
    assert!(
        fee >= FEE_RATE * tx.weight() && fee < Amount::from_sat(1_000),
        "fee {fee}"
    );
    wallet.mark_broadcast(&tx)?;
    assert_eq!(wallet.balance(), WalletBalance::default());
    Ok(())
}

#[test]
fn sending_all_keeps_the_anchor_reserve_in_an_output_of_its_own() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let keep = Amount::from_sat(20_000);
    let tx = wallet.build_payment(stranger(), SendAmount::All, FEE_RATE, keep)?;
    assert_eq!(tx.output.len(), 2);
    assert!(tx
        .output
        .iter()
        .any(|o| o.value == keep && o.script_pubkey != stranger()));
    let sent = tx
        .output
        .iter()
        .find(|o| o.script_pubkey == stranger())
        .map(|o| o.value)
        .ok_or("no output to the recipient")?;
    let fee = Amount::ONE_BTC - keep - sent;
    assert!(fee < Amount::from_sat(1_000), "fee {fee}");
    wallet.mark_broadcast(&tx)?;
    assert_eq!(wallet.balance().unconfirmed_sat, keep.to_sat());
    assert_eq!(wallet.balance().confirmed_sat, 0);
    Ok(())
}

#[test]
fn a_payment_that_would_spend_the_anchor_reserve_is_refused_and_changes_nothing() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let keep = Amount::from_sat(20_000);
    let too_much = Amount::ONE_BTC - Amount::from_sat(10_000);
    let refused = wallet.build_payment(stranger(), SendAmount::Exact(too_much), FEE_RATE, keep);
    let can_send_sat = match refused {
        Err(WalletError::BelowReserve {
            left_sat,
            reserve_sat: 20_000,
            can_send_sat,
        }) => {
            assert!(left_sat < 10_000, "left {left_sat}");
            can_send_sat
        }
        other => panic!("expected BelowReserve, got {other:?}"),
    };
    // Nothing stays reserved: the amount the error names can be sent, and it leaves the reserve.
    assert!(can_send_sat > too_much.to_sat() - 20_000);
    let tx = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(can_send_sat)),
        FEE_RATE,
        keep,
    )?;
    let change: Amount = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey != stranger())
        .map(|o| o.value)
        .sum();
    assert!(change >= keep, "change {change}");
    Ok(())
}

#[test]
fn sending_all_of_a_wallet_within_the_anchor_reserve_is_refused() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let result = wallet.build_payment(stranger(), SendAmount::All, FEE_RATE, Amount::ONE_BTC);
    assert!(
        matches!(
            result,
            Err(WalletError::BelowReserve {
                can_send_sat: 0,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());
    Ok(())
}

#[test]
fn sending_all_of_a_dust_sized_wallet_is_below_dust() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    chain.mine(
        &wallet,
        None,
        vec![payment_to(&script, Amount::from_sat(500), 1)],
        0,
    );
    let result = wallet.build_payment(stranger(), SendAmount::All, FEE_RATE, Amount::ZERO);
    assert!(
        matches!(result, Err(WalletError::BelowDust { dust_sat: 294, .. })),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn change_below_the_chains_dust_threshold_goes_to_fees() -> TestResult {
    // A chain with Qtum-like dust: 400 sat/vB makes a P2WPKH output dust below 39,200 sat.
    let mut params = ChainParams::bitcoin_regtest();
    params.relay_policy.dust_relay_feerate = FeeRate::from_sat_per_vb_u32(400);
    let (wallet, _chain, _dir) = funded_wallet(&params)?;
    let result = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(30_000)),
        FEE_RATE,
        Amount::ZERO,
    );
    assert!(matches!(
        result,
        Err(WalletError::BelowDust {
            amount_sat: 30_000,
            dust_sat: 39_200
        })
    ));
    // 30,000 sat would be left: change on Bitcoin, dust here.
    let tx = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(99_970_000)),
        FEE_RATE,
        Amount::ZERO,
    )?;
    assert_eq!(tx.output.len(), 1, "{tx:?}");
    Ok(())
}

#[test]
fn built_transactions_reserve_their_inputs_until_cancelled() -> TestResult {
    let (wallet, _chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let amount = SendAmount::Exact(Amount::from_sat(100_000));
    let first = wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO)?;
    assert!(matches!(
        wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO),
        Err(WalletError::InsufficientFunds {
            available_sat: 0,
            ..
        })
    ));
    wallet.cancel(&first);
    let second = wallet.build_payment(stranger(), amount, FEE_RATE, Amount::ZERO)?;
    assert_eq!(
        second.input[0].previous_output,
        first.input[0].previous_output
    );
    let change_of = |tx: &Transaction| {
        tx.output
            .iter()
            .find(|o| is_mine(&wallet, &o.script_pubkey))
            .map(|o| o.script_pubkey.clone())
    };
    assert_eq!(
        change_of(&second),
        change_of(&first),
        "the change index was released"
    );
    Ok(())
}

#[test]
fn change_scripts_for_ldk_are_fresh_and_the_wallets() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let first = wallet
        .get_change_destination_script()
        .map_err(|()| "no change script")?;
    let second = wallet
        .get_change_destination_script()
        .map_err(|()| "no change script")?;
    assert_ne!(first, second);
    assert!(first.is_p2wpkh() && is_mine(&wallet, &first) && is_mine(&wallet, &second));
    Ok(())
}

#[test]
fn reorg_removes_a_transaction_only_the_old_branch_confirmed() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    let payment = payment_to(&script, Amount::ONE_BTC, 1);
    chain.mine(&wallet, None, Vec::new(), 0); // A1
    chain.mine(&wallet, None, vec![payment.clone()], 0); // A2
    assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());

    chain.disconnect_to(&wallet, 1);
    let b2 = chain.mine(&wallet, None, Vec::new(), 1); // B2, child of A1
    assert_eq!(wallet.balance(), WalletBalance::default());
    assert!(wallet.list_outputs().is_empty());
    assert_eq!(wallet.best_block(), BestBlock::new(b2.block_hash(), 2));

    // The new branch confirms it after all.
    chain.mine(&wallet, None, vec![payment], 1); // B3
    assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());
    Ok(())
}

/// The genesis block as chain-qtum's synthetic headers give it to LDK: another header, so another
/// hash than the real genesis hash the wallet is created with.
fn synthetic_genesis() -> Block {
    let mut genesis = genesis_block(Network::Regtest);
    genesis.header.merkle_root = TxMerkleNode::from_byte_array([0x51; 32]);
    genesis.header.version = Version::ONE;
    genesis
}

#[test]
fn a_new_wallet_on_a_fresh_chain_whose_genesis_ldk_knows_by_another_hash_gets_block_1() -> TestResult
{
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::with_genesis(synthetic_genesis());
    assert_ne!(
        chain.tip().block_hash,
        genesis_block(Network::Regtest).block_hash()
    );
    // A new node on a chain of nothing but its genesis block starts there.
    wallet.start_at(chain.tip())?;
    let script = receive_script(&wallet)?;
    chain.mine(&wallet, Some(&script), Vec::new(), 0);
    assert_eq!(wallet.sync_height(), 1);
    assert_eq!(wallet.balance().immature_sat, COINBASE_VALUE.to_sat());
    chain.mine(
        &wallet,
        None,
        vec![payment_to(&script, Amount::ONE_BTC, 1)],
        0,
    );
    assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());
    // A reorg of block 1 connects the new block 1 onto the same genesis.
    chain.disconnect_to(&wallet, 0);
    let b1 = chain.mine(&wallet, None, Vec::new(), 1);
    assert_eq!(wallet.best_block(), BestBlock::new(b1.block_hash(), 1));
    assert_eq!(wallet.balance(), WalletBalance::default());
    Ok(())
}

#[test]
fn a_restored_wallet_rescans_blocks_whose_headers_name_their_real_parents() -> TestResult {
    // Below the synthetic chain's anchor every Qtum block is an anchor of its own: its header
    // names its parent's real hash, not the synthetic hash the wallet was given for the parent.
    let (funder, _funder_dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    let script = receive_script(&funder)?;
    chain.mine_empty(&funder, 1);
    chain.mine(
        &funder,
        None,
        vec![payment_to(&script, Amount::ONE_BTC, 1)],
        0,
    );
    let spend = funder.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(10_000)),
        FEE_RATE,
        Amount::ZERO,
    )?;
    chain.mine(&funder, None, vec![spend], 0);
    chain.mine_empty(&funder, 2);
    let expected = funder.balance();
    assert!(expected.confirmed_sat > 0 && expected.confirmed_sat < Amount::ONE_BTC.to_sat());

    let (restored, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    for (height, block) in (0u32..).zip(&chain.blocks).skip(1) {
        let mut anchored = block.clone();
        anchored.header.prev_blockhash = bitcoin::BlockHash::from_byte_array([0xa0; 32]);
        restored.block_connected(&anchored, height);
    }
    assert_eq!(restored.sync_height(), chain.height());
    assert_eq!(restored.balance(), expected);
    Ok(())
}

#[test]
fn disconnected_blocks_stop_counting_at_once_and_across_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut chain = TestChain::new();
    {
        let store = SledStore::open(dir.path())?;
        let wallet = open_wallet(&store)?;
        let script = receive_script(&wallet)?;
        chain.mine(&wallet, None, Vec::new(), 0); // A1
        chain.mine(
            &wallet,
            None,
            vec![payment_to(&script, Amount::ONE_BTC, 1)],
            0,
        ); // A2
        chain.mine(&wallet, None, Vec::new(), 0); // A3
        assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());

        // The chain node went back to A1; no block of the new branch has come yet.
        chain.disconnect_to(&wallet, 1);
        assert_eq!(wallet.sync_height(), 1);
        assert_eq!(wallet.balance(), WalletBalance::default());
    }
    let store = SledStore::open(dir.path())?;
    let wallet = open_wallet(&store)?;
    assert_eq!(wallet.best_block(), chain.tip());
    assert_eq!(wallet.balance(), WalletBalance::default());
    chain.mine(&wallet, None, Vec::new(), 1); // B2, onto A1
    assert_eq!(wallet.sync_height(), 2);
    Ok(())
}

#[test]
fn reorg_to_a_shorter_branch_drops_every_block_above_the_fork() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    let script = receive_script(&wallet)?;
    chain.mine(&wallet, None, Vec::new(), 0); // A1
    chain.mine(&wallet, None, Vec::new(), 0); // A2
    chain.mine(
        &wallet,
        None,
        vec![payment_to(&script, Amount::ONE_BTC, 1)],
        0,
    ); // A3
    chain.disconnect_to(&wallet, 1);
    chain.mine(&wallet, None, Vec::new(), 1); // B2
    assert_eq!(wallet.sync_height(), 2);
    assert_eq!(wallet.balance(), WalletBalance::default());
    Ok(())
}

#[test]
fn our_reorged_out_payment_returns_to_unconfirmed() -> TestResult {
    let (wallet, mut chain, _dir) = funded_wallet(&ChainParams::bitcoin_regtest())?;
    let tx = wallet.build_payment(
        stranger(),
        SendAmount::Exact(Amount::from_sat(10_000)),
        FEE_RATE,
        Amount::ZERO,
    )?;
    wallet.mark_broadcast(&tx)?;
    chain.mine(&wallet, None, vec![tx], 0); // A2
    let confirmed = wallet.balance().confirmed_sat;
    chain.disconnect_to(&wallet, 1);
    chain.mine(&wallet, None, Vec::new(), 1); // B2
    assert_eq!(wallet.balance().unconfirmed_sat, confirmed);
    assert_eq!(wallet.balance().confirmed_sat, 0);
    Ok(())
}

#[test]
fn reopened_store_restores_addresses_balance_and_pending_transactions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut chain = TestChain::new();
    let (balance, outputs, best, third_address) = {
        let store = SledStore::open(dir.path())?;
        let wallet = open_wallet(&store)?;
        let script = receive_script(&wallet)?;
        chain.mine(
            &wallet,
            Some(&script),
            vec![payment_to(&script, Amount::ONE_BTC, 1)],
            0,
        );
        let _second = wallet.new_address()?;
        let third_address = wallet.new_address()?;
        let tx = wallet.build_payment(
            stranger(),
            SendAmount::Exact(Amount::from_sat(10_000)),
            FEE_RATE,
            Amount::ZERO,
        )?;
        wallet.mark_broadcast(&tx)?;
        (
            wallet.balance(),
            wallet.list_outputs(),
            wallet.best_block(),
            third_address,
        )
    };
    assert!(balance.immature_sat > 0 && balance.unconfirmed_sat > 0);

    let store = SledStore::open(dir.path())?;
    let wallet = open_wallet(&store)?;
    assert_eq!(wallet.balance(), balance);
    assert_eq!(wallet.list_outputs(), outputs);
    assert_eq!(wallet.best_block(), best);
    let fourth = wallet.new_address()?;
    assert_ne!(fourth, third_address);
    let (fresh, _fresh_dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let fresh_addresses: Vec<String> = (0..4)
        .map(|_| fresh.new_address())
        .collect::<Result<_, _>>()?;
    assert_eq!(
        fresh_addresses.get(3),
        Some(&fourth),
        "the address index survived"
    );
    // The poller keeps going where the wallet stopped.
    chain.mine_empty(&wallet, 1);
    assert_eq!(wallet.sync_height(), 2);
    Ok(())
}

#[test]
fn same_seed_in_a_new_store_finds_the_funds_in_the_same_blocks() -> TestResult {
    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    for nonce in 1..=3 {
        let script = receive_script(&wallet)?;
        chain.mine(
            &wallet,
            None,
            vec![payment_to(&script, Amount::ONE_BTC, nonce)],
            0,
        );
    }
    let change_script = wallet.new_change_script()?;
    chain.mine(
        &wallet,
        None,
        vec![payment_to(&change_script, Amount::ONE_BTC, 4)],
        0,
    );
    assert_eq!(wallet.balance().confirmed_sat, 4 * Amount::ONE_BTC.to_sat());

    let (recovered, _recovered_dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    chain.replay(&recovered);
    assert_eq!(recovered.balance(), wallet.balance());
    assert_eq!(recovered.list_outputs(), wallet.list_outputs());
    // Addresses already used are not handed out again.
    let next = recovered.new_address()?;
    assert!(wallet
        .list_outputs()
        .iter()
        .all(|output| output.address != next));
    Ok(())
}

#[test]
fn store_of_another_seed_or_network_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    drop(open_wallet(&store)?);
    let other_seed = NodeSeed::from_mnemonic(OTHER_SEED_WORDS)?;
    let result =
        OnchainWallet::load_or_create(&other_seed, &ChainParams::bitcoin_regtest(), &store);
    assert!(matches!(result, Err(WalletError::Mismatch(_))));
    let result = OnchainWallet::load_or_create(&seed()?, &ChainParams::bitcoin_signet(), &store);
    assert!(matches!(result, Err(WalletError::Mismatch(_))));
    assert!(open_wallet(&store).is_ok());
    Ok(())
}

#[test]
fn new_wallet_started_at_the_pollers_tip_follows_from_there() -> TestResult {
    // The chain exists before the wallet: the poller of a new node starts at its tip.
    let (observer, _observer_dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    let mut chain = TestChain::new();
    chain.mine_empty(&observer, 5);

    let (wallet, _dir) = new_wallet(&ChainParams::bitcoin_regtest())?;
    wallet.start_at(chain.tip())?;
    wallet.start_at(chain.tip())?;
    assert_eq!(wallet.sync_height(), 5);
    let script = receive_script(&wallet)?;
    chain.mine(
        &wallet,
        None,
        vec![payment_to(&script, Amount::ONE_BTC, 1)],
        0,
    );
    assert_eq!(wallet.balance().confirmed_sat, Amount::ONE_BTC.to_sat());
    assert!(matches!(
        wallet.start_at(BestBlock::new(chain.tip().block_hash, 7)),
        Err(WalletError::AlreadyStarted { sync_height: 6 })
    ));
    Ok(())
}

#[test]
fn change_set_log_compaction_keeps_the_merged_wallet() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let (expected_balance, expected_best) = {
        let wallet = open_wallet(&store)?;
        let mut chain = TestChain::new();
        let script = receive_script(&wallet)?;
        chain.mine(
            &wallet,
            None,
            vec![payment_to(&script, Amount::ONE_BTC, 1)],
            0,
        );
        chain.disconnect_to(&wallet, 0);
        chain.mine(
            &wallet,
            None,
            vec![payment_to(&script, Amount::ONE_BTC, 2)],
            1,
        );
        chain.mine_empty(&wallet, 3);
        (wallet.balance(), wallet.best_block())
    };
    let entries_before = store.namespace("wallet")?.iter_prefix(&[])?.len();
    assert!(entries_before > 3);
    let (_, merged) = ChangeSetLog::open(&store, 2)?;
    assert_eq!(store.namespace("wallet")?.iter_prefix(&[])?.len(), 1);
    let (_, after) = ChangeSetLog::open(&store, 2)?;
    assert_eq!(after, merged);
    let wallet = open_wallet(&store)?;
    assert_eq!(wallet.balance(), expected_balance);
    assert_eq!(wallet.best_block(), expected_best);
    Ok(())
}

#[test]
fn wallet_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<OnchainWallet>();
}
