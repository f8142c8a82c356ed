//! Bounded property tests over [`super::rpc_answer`]: arbitrary JSON, arbitrary text, and real
//! qtumd 27.1 answers (`fixtures/qtum-regtest/`) with one field replaced by arbitrary JSON.
//! `XLN_PROPTEST_CASES=100000 cargo test -p chain-bitcoin fuzz` runs a longer search.

// Only `serde_json::Value` is indexed here, which yields `Null` for what is missing.
#![allow(clippy::indexing_slicing)]

use proptest::prelude::*;
use serde_json::Value;

use super::*;

const CAPTURES: [&str; 4] = [
    include_str!("../../../fixtures/qtum-regtest/chain-info.json"),
    include_str!("../../../fixtures/qtum-regtest/addresses.json"),
    include_str!("../../../fixtures/qtum-regtest/policy.json"),
    include_str!("../../../fixtures/qtum-regtest/blocks-pow.json"),
];

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("XLN_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

/// Every answer object of the captures: `result`s, verbose blocks and headers, and a `gettxout`.
fn real_answers() -> &'static [Value] {
    static ANSWERS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    ANSWERS.get_or_init(|| {
        let mut answers = vec![serde_json::json!({
            "bestblock": "56bcd2fd82a80be13b8abc3213816ee6d7ad30c90e8bf65a5707bb66a8fef275",
            "confirmations": 2, "value": 1.5,
            "scriptPubKey": {"hex": "00141ad966b66ac50919eef4b9fe146a83124aae3273"},
            "coinbase": false, "coinstake": false
        })];
        for capture in CAPTURES {
            let entries: Value = serde_json::from_str(capture).unwrap_or_default();
            for entry in entries.as_array().into_iter().flatten() {
                for key in ["result", "block_json", "header_json", "block_hex"] {
                    if !entry[key].is_null() {
                        answers.push(entry[key].clone());
                    }
                }
            }
        }
        answers
    })
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1e-300,
            1e300,
            21e6,
            92_233_720_368.547_76,
            -1.5
        ])
        .prop_map(Value::from),
        ".{0,80}".prop_map(Value::String),
        "[0-9a-f]{0,130}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[test]
fn real_answers_are_read() {
    assert!(real_answers().len() >= 20, "{}", real_answers().len());
    for answer in real_answers() {
        rpc_answer(&answer.to_string(), 0);
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_json_is_a_value_or_an_error(answer in json_value(), index in any::<u32>()) {
        rpc_answer(&answer.to_string(), index);
    }

    #[test]
    fn arbitrary_text_is_a_value_or_an_error(text in ".{0,300}", index in 0u32..4) {
        rpc_answer(&text, index);
    }

    #[test]
    fn real_answers_with_a_field_replaced_are_values_or_errors(
        answer in any::<prop::sample::Index>(),
        field in prop::sample::select(vec![
            "chain", "blocks", "headers", "bestblockhash", "initialblockdownload",
            "verificationprogress", "tx", "feerate", "errors", "value", "scriptPubKey",
        ]),
        value in json_value(),
        index in 0u32..4,
    ) {
        let mut answer = answer.get(real_answers()).clone();
        if answer.is_object() {
            answer[field] = value;
        }
        rpc_answer(&answer.to_string(), index);
    }

    #[test]
    fn real_answers_cut_short_are_errors(answer in any::<prop::sample::Index>(), end in any::<usize>()) {
        let text = answer.get(real_answers()).to_string();
        let end = end % (text.len() + 1);
        rpc_answer(text.get(..end).unwrap_or_default(), 0);
    }
}
