//! How fast xln turns Qtum blocks into what LDK follows: parsing a block (header, transactions,
//! block hash) and making its synthetic header. Prints per-block times and throughput.
//!
//! Run with `cargo bench -p chain-qtum --bench qtum_blocks`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin::hex::FromHex;
use chain_qtum::synthetic::{synthetic_header, RealBlock};
use chain_qtum::QtumBlock;

const MAINNET_POW_HEX: &str = include_str!(
    "../../fixtures/qtum-public/mainnet_block_0000fd3c4ed0b6dcb008b2669a3321de220d5b0716cc2984893d25111cbf5e51.hex"
);
const TESTNET_POS_RAW: &[u8] = include_bytes!(
    "../../fixtures/qtum-public/testnet_block_1d4dbf11b2f51d129e8d8f8ac33474432dd1fc10d8bcc77567830a0f123e397e.raw"
);

/// Runs `work` repeatedly for about `budget` and returns the mean time per run.
fn time_per_run(budget: Duration, mut work: impl FnMut()) -> Duration {
    // Warm up caches and the allocator first.
    for _ in 0..100 {
        work();
    }
    let mut runs = 0u32;
    let started = Instant::now();
    while started.elapsed() < budget {
        for _ in 0..100 {
            work();
        }
        runs += 100;
    }
    started.elapsed() / runs
}

fn report(what: &str, bytes: usize, per_run: Duration) {
    let per_sec = 1.0 / per_run.as_secs_f64();
    let mib_per_sec = bytes as f64 * per_sec / (1024.0 * 1024.0);
    println!(
        "{what:<44} {:>9.2} µs/block  {per_sec:>10.0} blocks/s  {mib_per_sec:>8.1} MiB/s",
        per_run.as_secs_f64() * 1e6
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let budget = Duration::from_secs(2);
    let pow = Vec::<u8>::from_hex(MAINNET_POW_HEX.trim())?;
    let pos = TESTNET_POS_RAW.to_vec();
    println!(
        "Qtum blocks (fixtures: mainnet PoW {} B, testnet PoS {} B)",
        pow.len(),
        pos.len()
    );
    for (name, bytes) in [
        ("parse + hash, mainnet proof-of-work", &pow),
        ("parse + hash, testnet proof-of-stake", &pos),
    ] {
        // Fail before timing if the fixture does not parse.
        QtumBlock::from_bytes(bytes)?;
        let per_run = time_per_run(budget, || {
            if let Ok(block) = QtumBlock::from_bytes(black_box(bytes)) {
                black_box(block.block_hash());
            }
        });
        report(name, bytes.len(), per_run);
    }
    let block = QtumBlock::from_bytes(&pos)?;
    let real = RealBlock {
        height: 1,
        hash: block.block_hash(),
        prev_hash: block.header.prev_blockhash,
        time: block.header.time,
    };
    let per_run = time_per_run(budget, || {
        black_box(synthetic_header(black_box(&real), real.prev_hash).block_hash());
    });
    report("synthetic header + its hash", 80, per_run);
    Ok(())
}
