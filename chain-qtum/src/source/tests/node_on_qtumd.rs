//! A whole `ln_core` node built on [`QtumdChainSource`] (against the stand-in qtumd): the store is
//! shared through `NodeBuilder::store`, and what the node shows is Qtum's.

use std::sync::Arc;

use ln_core::node::NodeBuilder;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_qtumd_shows_qtum_addresses_invoices_and_tip_and_restarts() -> TestResult {
    let fixture = Fixture::start()?;
    let data_dir = fixture.dir.path().join("node");
    for start in ["first start", "restart"] {
        let params = ChainParams::qtum_regtest();
        let mut builder = NodeBuilder::new(&data_dir, params.clone());
        let store = builder.store()?;
        let source = QtumdChainSource::connect(params, &fixture.mock.url, auth(), &store).await?;
        // The chain hash the stored ChannelManager and graph carry is checked against Qtum's on
        // every start, so the restart proves the first start wrote Qtum's.
        let node = builder.build(Arc::new(source)).await?;

        let info = node.info();
        assert_eq!(
            (info.chain.as_str(), info.network.as_str()),
            ("qtum", "regtest"),
            "{start}"
        );
        assert_eq!(info.block_height, 2011, "{start}");
        assert_eq!(info.block_hash.to_string(), HASH_2011, "{start}");
        let address = node.new_address()?;
        assert!(address.starts_with("qcrt1q"), "{start}: {address}");
        let invoice = node.create_invoice(Some(250_000_000), "qtum", None, None)?;
        assert!(
            invoice.bolt11.starts_with("lnqcrt2500u1"),
            "{start}: {}",
            invoice.bolt11
        );
        let decoded = node.decode_invoice(&invoice.bolt11)?;
        assert_eq!(decoded.amount_msat, Some(250_000_000), "{start}");
        node.stop().await;
        drop(node);
        drop(store);
    }
    Ok(())
}
