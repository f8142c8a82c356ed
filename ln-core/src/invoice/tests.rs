//! Invoices LDK builds, re-encoded under each chain's prefix and read back; BOLT11's own test
//! vectors; invoices of other chains and damaged invoices.

// Test strings are ASCII and sliced within their own length.
#![allow(clippy::indexing_slicing)]

use std::str::FromStr;
use std::time::Duration;

use bech32::primitives::decode::CheckedHrpstring;
use bitcoin::hex::FromHex;
use lightning::routing::router::PaymentParameters;
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret, RouteHintHop, RoutingFees};

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CREATED_AT: u64 = 1_700_000_000;
const PAYMENT_HASH: [u8; 32] = [0x5a; 32];
const PAYMENT_SECRET: [u8; 32] = [0x7e; 32];

/// The key of the BOLT11 spec's examples (payee 03e7156a…).
const SPEC_KEY: &str = "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734";
const SPEC_PAYEE: &str = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad";
const SPEC_PAYMENT_HASH: &str = "0001020304050607080900010203040506070809000102030405060708090102";

/// BOLT11 spec: "Please send $3 for a cup of coffee to the same peer, within one minute".
const SPEC_COFFEE: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";

/// The same coffee invoice as the Qtum fork of Eclair wrote it (qtumproject/lightning-demo,
/// eclair-core/src/test/scala/fr/acinq/eclair/payment/PaymentRequestSpec.scala): from 2019, so
/// without a payment secret or feature bits.
const ECLAIR_QTUM_COFFEE: &str = "lnqc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuxug2638gpkwdkfy53nhf73fu3t3ywzuugdq48w88vxxrcryr6s4q0nxax332374q0tjghylhfepa70np75ksztw5y3srrjxawufseuqp09cm5n";

fn test_key() -> Result<SecretKey, bitcoin::secp256k1::Error> {
    SecretKey::from_slice(&[0x42; 32])
}

fn public_key(secret: &SecretKey) -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::signing_only(), secret)
}

fn route_hint() -> Result<RouteHint, Box<dyn std::error::Error>> {
    let hop_key = SecretKey::from_slice(&[0x07; 32])?;
    Ok(RouteHint(vec![RouteHintHop {
        src_node_id: public_key(&hop_key),
        short_channel_id: 0x0001_2300_0004_0001,
        fees: RoutingFees {
            base_msat: 1000,
            proportional_millionths: 250,
        },
        cltv_expiry_delta: 144,
        htlc_minimum_msat: None,
        htlc_maximum_msat: None,
    }]))
}

/// An invoice with every field the node uses, as LDK builds and signs it.
fn ldk_invoice(
    currency: Currency,
    amount_msat: Option<u64>,
    key: &SecretKey,
) -> Result<Bolt11Invoice, Box<dyn std::error::Error>> {
    let builder = InvoiceBuilder::new(currency)
        .description("two coffees, no sugar".to_owned())
        .payment_hash(sha256::Hash::from_byte_array(PAYMENT_HASH))
        .payment_secret(PaymentSecret(PAYMENT_SECRET))
        .duration_since_epoch(Duration::from_secs(CREATED_AT))
        .min_final_cltv_expiry_delta(144)
        .expiry_time(Duration::from_secs(7200))
        .private_route(route_hint()?)
        .basic_mpp()
        .payment_metadata(vec![0xde, 0xad, 0xbe, 0xef]);
    let builder = match amount_msat {
        Some(amount) => builder.amount_milli_satoshis(amount),
        None => builder,
    };
    let secp = Secp256k1::signing_only();
    builder
        .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, key))
        .map_err(|e| format!("{e:?}").into())
}

/// Every field of `parsed` equals what lightning-invoice reads from `invoice`.
fn assert_same_fields(parsed: &ChainInvoice, invoice: &Bolt11Invoice) {
    let description = match invoice.description() {
        lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(d) => {
            InvoiceDescription::Direct(d.as_inner().0.clone())
        }
        lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(h) => {
            InvoiceDescription::Hash(h.0.to_byte_array())
        }
    };
    assert_eq!(parsed.payee, invoice.get_payee_pub_key());
    assert_eq!(parsed.payment_hash, invoice.payment_hash().to_byte_array());
    assert_eq!(parsed.payment_secret, Some(invoice.payment_secret().0));
    assert_eq!(parsed.amount_msat, invoice.amount_milli_satoshis());
    assert_eq!(parsed.description, description);
    assert_eq!(parsed.created_at, invoice.duration_since_epoch().as_secs());
    assert_eq!(parsed.expiry_secs, invoice.expiry_time().as_secs());
    assert_eq!(
        parsed.min_final_cltv_expiry_delta,
        invoice.min_final_cltv_expiry_delta()
    );
    assert_eq!(parsed.route_hints, invoice.route_hints());
    assert_eq!(parsed.features.as_ref(), invoice.features());
    assert_eq!(parsed.payment_metadata.as_ref(), invoice.payment_metadata());
    assert_eq!(
        Some(Duration::from_secs(parsed.expires_at())),
        invoice.expires_at()
    );
}

/// `text` with the data part (signature included) kept and the HRP replaced, re-checksummed:
/// what an attacker who does not hold the payee's key can produce.
fn with_hrp(text: &str, new_hrp: &str) -> Result<String, Box<dyn std::error::Error>> {
    let checked = CheckedHrpstring::new::<Bolt11Bech32>(text)?;
    let hrp = Hrp::parse(new_hrp)?;
    Ok(checked
        .fe32_iter::<&mut dyn Iterator<Item = u8>>()
        .with_checksum::<Bolt11Bech32>(&hrp)
        .chars()
        .collect())
}

#[test]
fn lnqcrt_invoice_round_trips_every_field_and_the_payee() -> TestResult {
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let params = ChainParams::qtum_regtest();

    let qtum = encode(&params, &invoice, &key)?;
    assert!(qtum.starts_with("lnqcrt10u1"), "{qtum}");
    assert!(Bolt11Invoice::from_str(&qtum).is_err());

    let parsed = parse(&params, &qtum)?;
    assert_same_fields(&parsed, &invoice);
    assert_eq!(parsed.payee, public_key(&key));
    assert_eq!(parsed.amount_msat, Some(1_000_000));
    assert_eq!(
        parsed.description,
        InvoiceDescription::Direct("two coffees, no sugar".to_owned())
    );
    assert_eq!(parsed.payment_hash, PAYMENT_HASH);
    assert_eq!(parsed.payment_secret, Some(PAYMENT_SECRET));
    assert_eq!(parsed.created_at, CREATED_AT);
    assert_eq!(parsed.expiry_secs, 7200);
    assert_eq!(parsed.min_final_cltv_expiry_delta, 144);
    assert_eq!(parsed.route_hints, vec![route_hint()?]);
    assert_eq!(parsed.payment_metadata, Some(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(parsed.bolt11, qtum);
    Ok(())
}

#[test]
fn qtum_mainnet_and_testnet_invoices_round_trip_under_lnqc_and_lntq() -> TestResult {
    let key = test_key()?;
    let cases = [
        (ChainParams::qtum_mainnet(), Currency::Bitcoin, "lnqc25m1"),
        (
            ChainParams::qtum_testnet(),
            Currency::BitcoinTestnet,
            "lntq25m1",
        ),
        // The currency LDK built with does not matter.
        (ChainParams::qtum_testnet(), Currency::Regtest, "lntq25m1"),
    ];
    for (params, currency, start) in cases {
        let invoice = ldk_invoice(currency, Some(2_500_000_000), &key)?;
        let qtum = encode(&params, &invoice, &key)?;
        assert!(qtum.starts_with(start), "{qtum}");
        let parsed = parse(&params, &qtum)?;
        assert_same_fields(&parsed, &invoice);
        assert_eq!(parsed.payee, public_key(&key));
    }
    Ok(())
}

#[test]
fn bitcoin_encode_is_identity_and_parse_matches_lightning_invoice() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::bitcoin_regtest();
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let text = encode(&params, &invoice, &key)?;
    assert_eq!(text, invoice.to_string());
    assert!(text.starts_with("lnbcrt10u1"));
    let parsed = parse(&params, &text)?;
    assert_same_fields(&parsed, &invoice);
    assert_eq!(parsed.bolt11, text);
    Ok(())
}

#[test]
fn reencoding_for_another_bitcoin_network_is_accepted_by_lightning_invoice() -> TestResult {
    // Our signature over a new HRP checked by lightning-invoice's own verifier.
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let signet = encode(&ChainParams::bitcoin_signet(), &invoice, &key)?;
    assert!(signet.starts_with("lntbs10u1"), "{signet}");
    let stock = Bolt11Invoice::from_str(&signet).map_err(|e| format!("{e:?}"))?;
    assert_eq!(stock.currency(), Currency::Signet);
    assert_eq!(stock.get_payee_pub_key(), public_key(&key));
    assert_same_fields(&parse(&ChainParams::bitcoin_signet(), &signet)?, &stock);
    assert_same_fields(&parse(&ChainParams::bitcoin_signet(), &signet)?, &invoice);
    Ok(())
}

#[test]
fn added_route_hints_follow_the_invoices_own_and_verify_on_every_chain() -> TestResult {
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let lsp_key = SecretKey::from_slice(&[0x09; 32])?;
    let lsp_hint = RouteHint(vec![RouteHintHop {
        src_node_id: public_key(&lsp_key),
        short_channel_id: 0x0000_0f00_0002_0000,
        fees: RoutingFees {
            base_msat: 0,
            proportional_millionths: 0,
        },
        cltv_expiry_delta: 72,
        htlc_minimum_msat: None,
        htlc_maximum_msat: None,
    }]);
    for params in [ChainParams::bitcoin_regtest(), ChainParams::qtum_regtest()] {
        let text =
            encode_with_route_hints(&params, &invoice, std::slice::from_ref(&lsp_hint), &key)?;
        let parsed = parse(&params, &text)?;
        assert_eq!(parsed.route_hints, vec![route_hint()?, lsp_hint.clone()]);
        assert_eq!(parsed.payee, public_key(&key));
        assert_eq!(parsed.payment_hash, PAYMENT_HASH);
        assert_eq!(parsed.payment_secret, Some(PAYMENT_SECRET));
        assert_eq!(parsed.min_final_cltv_expiry_delta, 144);
    }
    // lightning-invoice's own verifier accepts the re-signed Bitcoin invoice.
    let bitcoin = encode_with_route_hints(
        &ChainParams::bitcoin_regtest(),
        &invoice,
        std::slice::from_ref(&lsp_hint),
        &key,
    )?;
    let stock = Bolt11Invoice::from_str(&bitcoin).map_err(|e| format!("{e:?}"))?;
    assert_eq!(stock.route_hints(), vec![route_hint()?, lsp_hint]);
    Ok(())
}

#[test]
fn any_amount_invoice_has_no_amount() -> TestResult {
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, None, &key)?;
    for params in [ChainParams::qtum_regtest(), ChainParams::bitcoin_regtest()] {
        let text = encode(&params, &invoice, &key)?;
        assert!(
            text.starts_with(&format!("{}1", params.bolt11_prefix)),
            "{text}"
        );
        let parsed = parse(&params, &text)?;
        assert_eq!(parsed.amount_msat, None);
        assert_same_fields(&parsed, &invoice);
    }
    Ok(())
}

#[test]
fn description_hash_invoice_round_trips() -> TestResult {
    let key = test_key()?;
    let description_hash = sha256::Hash::hash(b"a long description published elsewhere");
    let invoice = InvoiceBuilder::new(Currency::Bitcoin)
        .description_hash(description_hash)
        .payment_hash(sha256::Hash::from_byte_array(PAYMENT_HASH))
        .payment_secret(PaymentSecret(PAYMENT_SECRET))
        .duration_since_epoch(Duration::from_secs(CREATED_AT))
        .min_final_cltv_expiry_delta(18)
        .build_signed(|hash| Secp256k1::signing_only().sign_ecdsa_recoverable(hash, &key))
        .map_err(|e| format!("{e:?}"))?;
    let params = ChainParams::qtum_mainnet();
    let parsed = parse(&params, &encode(&params, &invoice, &key)?)?;
    assert_eq!(
        parsed.description,
        InvoiceDescription::Hash(description_hash.to_byte_array())
    );
    assert_eq!(parsed.expiry_secs, 3600);
    assert_eq!(parsed.route_hints, Vec::new());
    assert_eq!(parsed.payment_metadata, None);
    assert_same_fields(&parsed, &invoice);
    Ok(())
}

#[test]
fn upper_case_and_lightning_scheme_are_accepted_but_mixed_case_is_not() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let text = encode(&params, &invoice, &key)?;
    let lower = parse(&params, &text)?;

    let upper = text.to_uppercase();
    let parsed = parse(&params, &upper)?;
    assert_eq!(parsed.bolt11, upper);
    assert_eq!(
        ChainInvoice {
            bolt11: text.clone(),
            ..parsed
        },
        lower
    );

    for wrapped in [
        format!("lightning:{text}"),
        format!("  LIGHTNING:{upper}\n"),
    ] {
        let parsed = parse(&params, &wrapped)?;
        assert_eq!(parsed.payment_hash, PAYMENT_HASH);
        assert_eq!(parsed.bolt11.to_lowercase(), text);
    }

    let mixed = format!("ln{}", &upper[2..]);
    assert!(
        matches!(parse(&params, &mixed), Err(InvoiceCodecError::Malformed(_))),
        "{mixed}"
    );
    Ok(())
}

#[test]
fn every_single_changed_character_is_refused() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let text = encode(&params, &invoice, &key)?;
    let data_start = text.rfind('1').ok_or("no separator")? + 1;
    for (position, original) in text.char_indices().skip(data_start) {
        let replacement = if original == 'q' { 'p' } else { 'q' };
        let mut changed = text.clone();
        changed.replace_range(position..=position, &replacement.to_string());
        match parse(&params, &changed) {
            Err(InvoiceCodecError::Malformed(_) | InvoiceCodecError::BadSignature) => {}
            other => panic!("character {position} changed to {replacement}: {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn altered_invoice_with_a_payee_field_fails_its_signature() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let secp = Secp256k1::signing_only();
    let invoice = InvoiceBuilder::new(Currency::Regtest)
        .description("with an n field".to_owned())
        .payment_hash(sha256::Hash::from_byte_array(PAYMENT_HASH))
        .payment_secret(PaymentSecret(PAYMENT_SECRET))
        .duration_since_epoch(Duration::from_secs(CREATED_AT))
        .min_final_cltv_expiry_delta(144)
        .amount_milli_satoshis(1_000_000)
        .payee_pub_key(public_key(&key))
        .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &key))
        .map_err(|e| format!("{e:?}"))?;
    let text = encode(&params, &invoice, &key)?;
    assert_eq!(parse(&params, &text)?.payee, public_key(&key));

    // Ten times the amount, with a valid checksum but the original signature.
    let altered = with_hrp(&text, "lnqcrt100u")?;
    assert_eq!(
        parse(&params, &altered),
        Err(InvoiceCodecError::BadSignature)
    );
    Ok(())
}

#[test]
fn altered_invoice_without_a_payee_field_names_another_payee() -> TestResult {
    // BOLT11's recovery rule: without `n`, a changed invoice still "verifies", for another key.
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let altered = with_hrp(&encode(&params, &invoice, &key)?, "lnqcrt100u")?;
    match parse(&params, &altered) {
        Ok(parsed) => assert_ne!(parsed.payee, public_key(&key)),
        Err(error) => assert_eq!(error, InvoiceCodecError::BadSignature),
    }
    Ok(())
}

#[test]
fn invoices_of_other_chains_are_wrong_chain() -> TestResult {
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let lnbcrt = invoice.to_string();
    let lnqcrt = encode(&ChainParams::qtum_regtest(), &invoice, &key)?;
    let lnqc = encode(&ChainParams::qtum_mainnet(), &invoice, &key)?;

    let cases = [
        (
            ChainParams::qtum_regtest(),
            lnbcrt.as_str(),
            "lnqcrt",
            "lnbcrt",
        ),
        (
            ChainParams::bitcoin_regtest(),
            lnqcrt.as_str(),
            "lnbcrt",
            "lnqcrt",
        ),
        (ChainParams::qtum_regtest(), lnqc.as_str(), "lnqcrt", "lnqc"),
        (
            ChainParams::qtum_mainnet(),
            lnqcrt.as_str(),
            "lnqc",
            "lnqcrt",
        ),
        (ChainParams::qtum_mainnet(), SPEC_COFFEE, "lnqc", "lnbc"),
        (
            ChainParams::bitcoin_regtest(),
            SPEC_COFFEE,
            "lnbcrt",
            "lnbc",
        ),
        (
            ChainParams::bitcoin_mainnet(),
            ECLAIR_QTUM_COFFEE,
            "lnbc",
            "lnqc",
        ),
        // Checked before the checksum: a damaged foreign invoice is still foreign.
        (
            ChainParams::qtum_testnet(),
            "LNBC10U1QQQQQQ",
            "lntq",
            "lnbc",
        ),
    ];
    for (params, text, expected, found) in cases {
        let error = parse(&params, text).err();
        assert_eq!(
            error,
            Some(InvoiceCodecError::WrongChain {
                expected,
                found: found.to_owned()
            }),
            "{text}"
        );
    }
    let message = parse(&ChainParams::qtum_regtest(), &lnbcrt)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "the invoice is for another chain or network: it starts with `lnbcrt`, \
             but this node takes `lnqcrt` invoices"
        )
    );
    Ok(())
}

#[test]
fn bolt11_spec_vector_parses_to_the_spec_values() -> TestResult {
    let parsed = parse(&ChainParams::bitcoin_mainnet(), SPEC_COFFEE)?;
    assert_eq!(parsed.payee, PublicKey::from_str(SPEC_PAYEE)?);
    assert_eq!(parsed.amount_msat, Some(250_000_000));
    assert_eq!(
        parsed.payment_hash.as_slice(),
        Vec::<u8>::from_hex(SPEC_PAYMENT_HASH)?.as_slice()
    );
    assert_eq!(parsed.payment_secret, Some([0x11; 32]));
    assert_eq!(
        parsed.description,
        InvoiceDescription::Direct("1 cup coffee".to_owned())
    );
    assert_eq!(parsed.created_at, 1_496_314_658);
    assert_eq!(parsed.expiry_secs, 60);
    assert_eq!(parsed.min_final_cltv_expiry_delta, 18);
    let stock = Bolt11Invoice::from_str(SPEC_COFFEE).map_err(|e| format!("{e:?}"))?;
    assert_same_fields(&parsed, &stock);
    Ok(())
}

#[test]
fn spec_vector_reencoded_for_qtum_keeps_its_values() -> TestResult {
    let spec_key = SecretKey::from_str(SPEC_KEY)?;
    let stock = Bolt11Invoice::from_str(SPEC_COFFEE).map_err(|e| format!("{e:?}"))?;
    let params = ChainParams::qtum_mainnet();
    let qtum = encode(&params, &stock, &spec_key)?;
    assert!(qtum.starts_with("lnqc2500u1"), "{qtum}");
    assert_same_fields(&parse(&params, &qtum)?, &stock);
    Ok(())
}

#[test]
fn eclair_qtum_vector_verifies_and_is_written_the_same_way() -> TestResult {
    // Its signature checks out under our rule (sha256 over the `lnqc…` HRP), and signing its
    // fields again gives the very same string (RFC 6979 signatures are deterministic).
    let params = ChainParams::qtum_mainnet();
    let (raw, payee) = decode_verified(&params, ECLAIR_QTUM_COFFEE)?;
    assert_eq!(payee, PublicKey::from_str(SPEC_PAYEE)?);
    assert_eq!(raw.amount_pico_btc(), Some(2_500_000_000));
    let (_, data) = raw.to_raw();
    let rewritten = write_signed("lnqc2500u", data, &SecretKey::from_str(SPEC_KEY)?)?;
    assert_eq!(rewritten, ECLAIR_QTUM_COFFEE);
    // Predating payment secrets, it is not payable today.
    assert_eq!(
        parse(&params, ECLAIR_QTUM_COFFEE),
        Err(InvoiceCodecError::MissingField(
            "payment secret (`s` field)"
        ))
    );
    Ok(())
}

#[test]
fn bolt11_spec_invalid_vectors_are_refused() {
    let params = ChainParams::bitcoin_mainnet();
    // From BOLT11's "Examples of Invalid Invoices" (as in lightning-invoice's tests).
    let unknown_required_feature = "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q4psqqqqqqqqqqqqqqqqsgqtqyx5vggfcsll4wu246hz02kp85x4katwsk9639we5n5yngc3yhqkm35jnjw4len8vrnqnf5ejh0mzj9n3vz2px97evektfm2l6wqccp3y7372";
    let bad_checksum = "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt";
    let mixed_case = "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny";
    let bad_signature = "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqwgt7mcn5yqw3yx0w94pswkpq6j9uh6xfqqqtsk4tnarugeektd4hg5975x9am52rz4qskukxdmjemg92vvqz8nvmsye63r5ykel43pgz7zq0g2";
    let too_short = "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na6hlh";
    let unknown_multiplier = "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqrrzc4cvfue4zp3hggxp47ag7xnrlr8vgcmkjxk3j5jqethnumgkpqp23z9jclu3v0a7e0aruz366e9wqdykw6dxhdzcjjhldxq0w6wgqcnu43j";
    let sub_millisatoshi = "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgq0lzc236j96a95uv0m3umg28gclm5lqxtqqwk32uuk4k6673k6n5kfvx3d2h8s295fad45fdhmusm8sjudfhlf6dcsxmfvkeywmjdkxcp99202x";

    assert_eq!(
        parse(&params, unknown_required_feature),
        Err(InvoiceCodecError::UnsupportedFeatures(
            "it requires features this node does not know"
        ))
    );
    assert_eq!(
        parse(&params, bad_signature),
        Err(InvoiceCodecError::BadSignature)
    );
    for malformed in [
        bad_checksum,
        mixed_case,
        too_short,
        unknown_multiplier,
        sub_millisatoshi,
    ] {
        assert!(
            matches!(
                parse(&params, malformed),
                Err(InvoiceCodecError::Malformed(_))
            ),
            "{malformed}: {:?}",
            parse(&params, malformed)
        );
    }
}

#[test]
fn garbage_and_truncated_invoices_are_errors_not_panics() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let text = encode(
        &params,
        &ldk_invoice(Currency::Regtest, Some(1), &key)?,
        &key,
    )?;
    for end in 0..text.len() {
        assert!(parse(&params, &text[..end]).is_err(), "{}", &text[..end]);
    }
    for garbage in [
        "",
        "1",
        "ln1",
        "lightning:",
        "lnqcrt1",
        "lnqcrt1é",
        "lnqcrté1qqqq",
        "lnqcrt99999999999999999999999p1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "bitcoin:bcrt1qxyz",
    ] {
        assert!(parse(&params, garbage).is_err(), "{garbage}");
    }
    assert!(matches!(
        parse(&params, "lno1pqps7sjqpgtyzm3qv4uxzmtsd3jjqer9wd3hy6tsw35k7msjzfpy7nz5yqcn"),
        Err(InvoiceCodecError::Malformed(message)) if message.contains("BOLT12 offer")
    ));
    Ok(())
}

#[test]
fn encode_refuses_a_key_that_is_not_the_payee() -> TestResult {
    let key = test_key()?;
    let other = SecretKey::from_slice(&[0x43; 32])?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    for params in [ChainParams::qtum_regtest(), ChainParams::bitcoin_regtest()] {
        assert_eq!(
            encode(&params, &invoice, &other),
            Err(InvoiceCodecError::SignerIsNotPayee {
                payee: public_key(&key)
            })
        );
    }
    Ok(())
}

#[test]
fn expiry_is_created_at_plus_expiry_secs_and_inclusive() -> TestResult {
    let key = test_key()?;
    let params = ChainParams::qtum_regtest();
    let parsed = parse(
        &params,
        &encode(&params, &ldk_invoice(Currency::Regtest, None, &key)?, &key)?,
    )?;
    assert_eq!(parsed.expires_at(), CREATED_AT + 7200);
    assert!(!parsed.is_expired_at(CREATED_AT));
    assert!(!parsed.is_expired_at(CREATED_AT + 7200));
    assert!(parsed.is_expired_at(CREATED_AT + 7201));
    Ok(())
}

#[test]
fn payment_params_equal_what_ldk_derives_from_the_invoice() -> TestResult {
    let key = test_key()?;
    let invoice = ldk_invoice(Currency::Regtest, Some(1_000_000), &key)?;
    let expected_params = PaymentParameters::from_bolt11_invoice(&invoice);
    // What `pay_for_bolt11_invoice` puts in the onion (outbound_payment.rs, not a public helper).
    let mut expected_onion = RecipientOnionFields::secret_only(*invoice.payment_secret());
    expected_onion.payment_metadata = invoice.payment_metadata().cloned();

    for params in [
        ChainParams::bitcoin_regtest(),
        ChainParams::qtum_regtest(),
        ChainParams::qtum_mainnet(),
    ] {
        let parsed = parse(&params, &encode(&params, &invoice, &key)?)?;
        assert_eq!(payment_params(&parsed), expected_params);
        assert_eq!(recipient_onion(&parsed), expected_onion);
    }
    Ok(())
}

#[test]
fn payment_params_of_the_spec_vector_equal_ldks() -> TestResult {
    let stock = Bolt11Invoice::from_str(SPEC_COFFEE).map_err(|e| format!("{e:?}"))?;
    let parsed = parse(&ChainParams::bitcoin_mainnet(), SPEC_COFFEE)?;
    assert_eq!(
        payment_params(&parsed),
        PaymentParameters::from_bolt11_invoice(&stock)
    );
    assert_eq!(
        recipient_onion(&parsed),
        RecipientOnionFields::secret_only(*stock.payment_secret())
    );
    Ok(())
}
