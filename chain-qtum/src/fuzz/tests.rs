//! Bounded property tests over the fuzz entry points: arbitrary bytes and text, the real blocks
//! of `fixtures/` with bytes replaced, inserted, deleted or cut off, and `getblockheader` answers
//! with fields replaced by arbitrary JSON. `XLN_PROPTEST_CASES=100000 cargo test -p chain-qtum
//! fuzz` runs a longer search.

// Only `serde_json::Value` is indexed here, which yields `Null` for what is missing.
#![allow(clippy::indexing_slicing)]

use bitcoin::hex::DisplayHex;
use proptest::prelude::*;
use serde_json::Value;

use super::*;

const BLOCKS_POW: &str = include_str!("../../../fixtures/qtum-regtest/blocks-pow.json");

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("XLN_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

fn blocks() -> &'static [Vec<u8>] {
    static BLOCKS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    BLOCKS.get_or_init(fixture_blocks)
}

/// qtumd's `getblockheader <hash> true` answers from the regtest captures.
fn header_answers() -> &'static [Value] {
    static ANSWERS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    ANSWERS.get_or_init(|| {
        let captures: Value = serde_json::from_str(BLOCKS_POW).unwrap_or_default();
        captures
            .as_array()
            .map(|list| list.iter().map(|e| e["header_json"].clone()).collect())
            .unwrap_or_default()
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Replace(at, b) if len > 0 => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (len + 1), b),
            Edit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,80}".prop_map(Value::String),
        "[0-9a-f]{64}".prop_map(Value::String),
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
fn the_fixtures_hold_real_blocks_and_headers() {
    // Besides blocks and headers, the captures hold transactions: bases for mutations too.
    let parsed_blocks = blocks()
        .iter()
        .filter(|bytes| QtumBlock::from_bytes(bytes).is_ok())
        .count();
    let parsed_headers = blocks()
        .iter()
        .filter(|bytes| QtumHeader::from_bytes(bytes).is_ok())
        .count();
    // Seven proof-of-work regtest blocks, the one with a spend, and the two public blocks.
    assert_eq!(parsed_blocks, 10);
    assert_eq!(parsed_headers, 10);
    for block in blocks() {
        block_bytes(block);
    }
    for answer in header_answers() {
        header_answer(&answer.to_string());
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_bytes_are_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        block_bytes(&bytes);
    }

    #[test]
    fn edited_real_blocks_are_errors_not_panics(
        block in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let edited = apply(block.get(blocks()).clone(), &edits);
        block_bytes(&edited);
        block_hex(&edited.to_lower_hex_string());
    }

    #[test]
    fn arbitrary_text_as_block_hex_is_an_error_not_a_panic(text in "[0-9a-fA-F ]{0,600}|.{0,300}") {
        block_hex(&text);
    }

    #[test]
    fn arbitrary_json_as_a_header_answer_is_an_error_not_a_panic(answer in json_value()) {
        header_answer(&answer.to_string());
    }

    #[test]
    fn real_header_answers_with_a_field_replaced_are_errors_not_panics(
        answer in any::<prop::sample::Index>(),
        field in prop::sample::select(vec!["hash", "height", "confirmations", "time", "previousblockhash", "flags"]),
        value in json_value(),
    ) {
        let mut answer = answer.get(header_answers()).clone();
        answer[field] = value;
        header_answer(&answer.to_string());
    }
}
