//! Bounded property tests over the fuzz entry points: every method with arbitrary params (by
//! position, by name, or not an array or object at all), arbitrary and `xln.toml`-shaped text, and
//! command lines of xlnd's flags with arbitrary values. `XLN_PROPTEST_CASES=100000 cargo test -p
//! xln-daemon fuzz` runs a longer search.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

/// The keys of `xln.toml`, which are also the flags' names with `-` for `_`.
const SETTINGS: &[&str] = &[
    "chain",
    "network",
    "node_rpc_url",
    "node_rpc_user",
    "node_rpc_password",
    "node_rpc_cookie",
    "listen",
    "rpc_listen",
    "rpc_user",
    "rpc_password",
    "alias",
    "log_level",
    "max_inbound_htlc_in_flight_percent",
    "max_accepted_htlcs",
    "anchor_reserve_per_channel_sat",
    "intercept_timeout_secs",
    "htlc_batching",
];

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("XLN_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

fn method_name() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = rpc_contract::method_docs()
        .iter()
        .map(|m| m.name.clone())
        .collect();
    names.push("nosuchmethod".to_owned());
    prop::sample::select(names)
}

/// Any JSON value, nested a few levels, with the words and numbers params are checked against.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec!["all", "any", "-1", "18446744073709551616", "1e3", ""])
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[0-9]{0,22}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A TOML value. Addresses get no letters, so that no case waits on a DNS look-up.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.:\\[\\]]{0,24}".prop_map(|s| format!("{s:?}")),
        ".{0,30}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            "\"qtum\"",
            "\"bitcoin\"",
            "\"regtest\"",
            "\"mainnet\"",
            "\"signet\"",
            "\"testnet\"",
            "\"127.0.0.1:9835\"",
            "\"[::1]:0\"",
            "0",
            "100",
            "101",
            "255",
            "256",
            "-1",
            "true",
            "[]",
            "{}",
            "1979-05-27T07:32:00Z",
            "\"\"",
            "'''\n'''",
            "1e3",
            "nan",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

#[test]
fn every_method_accepts_its_documented_example_shapes() {
    assert!(rpc_params("getinfo", None).is_ok());
    assert!(rpc_params("invoice", Some(r#"[1000, "coffee"]"#)).is_ok());
    assert!(rpc_params(
        "invoice",
        Some(r#"{"amount_msat": "any", "description": ""}"#)
    )
    .is_ok());
    assert!(rpc_params("withdraw", Some(r#"["bcrt1q", "all", 2]"#)).is_ok());
    assert!(rpc_params("invoice", Some("[1000, ")).is_err());
    assert!(rpc_params("nosuchmethod", None).is_err());
}

#[test]
fn an_empty_config_file_resolves_to_the_defaults() -> anyhow::Result<()> {
    let config = config_file("")?;
    assert_eq!(config.params.bolt11_prefix, "lnbcrt");
    assert_eq!(
        command_line(&["--chain".to_owned(), "qtum".to_owned()])?
            .params
            .bolt11_prefix,
        "lnqcrt"
    );
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_params_are_checked_not_a_panic(method in method_name(), params in json_value()) {
        let _ = rpc_params(&method, Some(&params.to_string()));
    }

    #[test]
    fn arbitrary_params_text_is_an_error_not_a_panic(method in method_name(), text in ".{0,80}") {
        let _ = rpc_params(&method, Some(&text));
    }

    #[test]
    fn positional_params_of_any_values_are_checked_not_a_panic(
        method in method_name(),
        values in prop::collection::vec(json_value(), 0..6),
    ) {
        let _ = rpc_params(&method, Some(&Value::Array(values).to_string()));
    }

    #[test]
    fn named_params_of_any_values_are_checked_not_a_panic(
        method in method_name(),
        values in prop::collection::vec((any::<prop::sample::Index>(), json_value()), 0..6),
    ) {
        let names: Vec<&str> = rpc_contract::describe::contract()
            .method(&method)
            .map(|m| m.params.iter().map(|p| p.name.as_str()).chain(["extra"]).collect())
            .unwrap_or_else(|| vec!["extra"]);
        let object: Map<String, Value> = values
            .into_iter()
            .map(|(name, value)| (name.get(&names).to_string(), value))
            .collect();
        let _ = rpc_params(&method, Some(&Value::Object(object).to_string()));
    }

    #[test]
    fn arbitrary_config_text_is_an_error_or_a_config(text in ".{0,200}") {
        let _ = config_file(&text);
    }

    #[test]
    fn config_files_of_any_values_are_an_error_or_a_config(
        lines in prop::collection::vec((prop::sample::select(SETTINGS), toml_value()), 0..8),
        table in prop::option::of("\\[[a-z_]{0,8}\\]"),
    ) {
        let mut text: String = lines.iter().map(|(key, value)| format!("{key} = {value}\n")).collect();
        if let Some(table) = table {
            text.push_str(&table);
        }
        let _ = config_file(&text);
    }

    #[test]
    fn command_lines_of_any_values_are_an_error_or_a_config(
        flags in prop::collection::vec((prop::sample::select(SETTINGS), toml_value(), any::<bool>()), 0..6),
    ) {
        let mut args = Vec::new();
        for (setting, value, joined) in flags {
            let flag = format!("--{}", setting.replace('_', "-"));
            let value = value.trim_matches('"').to_owned();
            if joined {
                args.push(format!("{flag}={value}"));
            } else {
                args.extend([flag, value]);
            }
        }
        let _ = command_line(&args);
    }
}
