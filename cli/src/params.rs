//! Turning the words after the method name into the named-params object xlnd expects, guided by
//! the method's entry in the daemon's help table.
//!
//! Words are positional (in the table's order) or `key=value`; a word is `key=value` only when
//! `key` is one of the method's parameter names, because descriptions may contain `=`. Positional
//! words come first. Values are converted by the table's type, but never judged: a word that is not
//! a number for an `integer` parameter is sent as a string so that the daemon answers with its own
//! error. What the table alone can tell (unknown key, too many words, a missing required
//! parameter) is reported before anything is sent.

use serde_json::{Map, Number, Value};

use crate::help_table::{MethodHelp, ParamHelp, ParamKind};

/// Why the words do not fit the method's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A `key=value` word whose key is not a parameter of the method.
    #[error("`{method}` has no parameter `{key}` (its parameters: {known})")]
    UnknownKey {
        /// The method called.
        method: String,
        /// The key given.
        key: String,
        /// The method's parameter names.
        known: String,
    },
    /// More positional words than the method has parameters.
    #[error("`{method}` takes at most {max} parameter(s) ({known}); `{word}` is one too many")]
    TooMany {
        /// The method called.
        method: String,
        /// How many parameters the method has.
        max: usize,
        /// The method's parameter names.
        known: String,
        /// The first word with no parameter left for it.
        word: String,
    },
    /// A positional word after a `key=value` one, so its position is ambiguous.
    #[error("`{word}` comes after key=value parameters; give positional values first, or write it as key=value")]
    PositionalAfterNamed {
        /// The positional word.
        word: String,
    },
    /// The same parameter given twice.
    #[error("parameter `{name}` is given twice")]
    Duplicate {
        /// The parameter's name.
        name: String,
    },
    /// Required parameters that were not given.
    #[error("`{method}` needs {}", missing_list(.missing))]
    MissingRequired {
        /// The method called.
        method: String,
        /// The names of the missing parameters, in the table's order.
        missing: Vec<String>,
    },
    /// Words that do not fit a command xln-cli handles itself (`subscribe`).
    #[error("{0}")]
    Invalid(String),
}

fn missing_list(missing: &[String]) -> String {
    match missing {
        [one] => format!("parameter `{one}`"),
        many => {
            let quoted: Vec<String> = many.iter().map(|name| format!("`{name}`")).collect();
            format!("parameters {}", quoted.join(", "))
        }
    }
}

/// The named-params object for a call of `method` with the command-line `words`.
pub fn named_params(
    method: &MethodHelp,
    words: &[String],
) -> Result<Map<String, Value>, ParamsError> {
    let mut named = Map::new();
    let mut next_position = 0;
    let mut seen_key_value = false;
    for word in words {
        if let Some((param, raw_value)) = split_known_key(method, word) {
            if named.contains_key(&param.name) {
                return Err(ParamsError::Duplicate {
                    name: param.name.clone(),
                });
            }
            named.insert(param.name.clone(), json_value(&param.kind, raw_value));
            seen_key_value = true;
            continue;
        }
        if seen_key_value {
            return Err(unknown_key_error(method, word)
                .unwrap_or_else(|| ParamsError::PositionalAfterNamed { word: word.clone() }));
        }
        let param = positional_param(method, next_position, word)?;
        named.insert(param.name.clone(), json_value(&param.kind, word));
        next_position += 1;
    }
    let missing: Vec<String> = method
        .params
        .iter()
        .filter(|param| param.required && !named.contains_key(&param.name))
        .map(|param| param.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ParamsError::MissingRequired {
            method: method.name.clone(),
            missing,
        });
    }
    Ok(named)
}

/// The parameter at `position` for the positional `word`, or why the word does not fit there.
fn positional_param<'m>(
    method: &'m MethodHelp,
    position: usize,
    word: &str,
) -> Result<&'m ParamHelp, ParamsError> {
    let Some(param) = method.params.get(position) else {
        return Err(
            unknown_key_error(method, word).unwrap_or_else(|| ParamsError::TooMany {
                method: method.name.clone(),
                max: method.params.len(),
                known: method.param_names(),
                word: word.to_owned(),
            }),
        );
    };
    // `name=…` can be a description but never a number or a flag: it is a mistyped key.
    let takes_free_text = matches!(param.kind, ParamKind::String | ParamKind::Other(_));
    if !takes_free_text {
        if let Some(error) = unknown_key_error(method, word) {
            return Err(error);
        }
    }
    Ok(param)
}

/// `Some((param, value))` when `word` is `key=value` with `key` a parameter of `method`.
fn split_known_key<'m, 'w>(
    method: &'m MethodHelp,
    word: &'w str,
) -> Option<(&'m ParamHelp, &'w str)> {
    let (key, value) = word.split_once('=')?;
    method.param(key).map(|param| (param, value))
}

/// The error for `word` if it looks like `key=value` (key spelled like a parameter name).
fn unknown_key_error(method: &MethodHelp, word: &str) -> Option<ParamsError> {
    let (key, _) = word.split_once('=')?;
    let mut chars = key.chars();
    let starts_like_a_name = chars.next().is_some_and(|first| first.is_ascii_lowercase());
    let spelled_like_a_name =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (starts_like_a_name && spelled_like_a_name).then(|| ParamsError::UnknownKey {
        method: method.name.clone(),
        key: key.to_owned(),
        known: method.param_names(),
    })
}

/// The JSON value for the command-line word `raw` of a parameter of type `kind`. Words that do not
/// fit the type are sent as strings, for the daemon to reject with its own error.
pub fn json_value(kind: &ParamKind, raw: &str) -> Value {
    let as_string = || Value::String(raw.to_owned());
    match kind {
        ParamKind::String | ParamKind::Other(_) => as_string(),
        ParamKind::Integer => parse_integer(raw)
            .map(Value::Number)
            .unwrap_or_else(as_string),
        ParamKind::Boolean => parse_boolean(raw)
            .map(Value::Bool)
            .unwrap_or_else(as_string),
        ParamKind::IntegerOrWord(word) => match parse_integer(raw) {
            Some(number) => Value::Number(number),
            None if raw.eq_ignore_ascii_case(word) => Value::String(word.clone()),
            None => as_string(),
        },
    }
}

fn parse_integer(raw: &str) -> Option<Number> {
    if let Ok(signed) = raw.parse::<i64>() {
        return Some(Number::from(signed));
    }
    raw.parse::<u64>().ok().map(Number::from)
}

fn parse_boolean(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn param(name: &str, type_name: &str, required: bool) -> ParamHelp {
        ParamHelp {
            name: name.to_owned(),
            kind: ParamKind::from(type_name.to_owned()),
            required,
            description: format!("the {name}"),
        }
    }

    fn method(name: &str, params: Vec<ParamHelp>) -> MethodHelp {
        MethodHelp {
            name: name.to_owned(),
            description: String::new(),
            params,
            result: String::new(),
        }
    }

    fn pay() -> MethodHelp {
        method(
            "pay",
            vec![
                param("bolt11", "string", true),
                param("amount_msat", "integer", false),
                param("max_fee_msat", "integer", false),
                param("timeout_secs", "integer", false),
            ],
        )
    }

    fn invoice() -> MethodHelp {
        method(
            "invoice",
            vec![
                param("amount_msat", "integer|any", true),
                param("description", "string", true),
                param("expiry_secs", "integer", false),
                param("payment_hash", "string", false),
            ],
        )
    }

    fn fundchannel() -> MethodHelp {
        method(
            "fundchannel",
            vec![
                param("id", "string", true),
                param("amount_sat", "integer", true),
                param("push_msat", "integer", false),
                param("announce", "boolean", false),
            ],
        )
    }

    fn withdraw() -> MethodHelp {
        method(
            "withdraw",
            vec![
                param("address", "string", true),
                param("amount_sat", "integer|all", true),
                param("feerate_sat_per_vb", "integer", false),
            ],
        )
    }

    fn setchannel() -> MethodHelp {
        method(
            "setchannel",
            vec![
                param("id", "string", true),
                param("fee_base_msat", "integer", false),
                param("fee_proportional_millionths", "integer", false),
                param("cltv_expiry_delta", "integer", false),
                param("htlc_minimum_msat", "integer", false),
                param("htlc_maximum_msat", "integer", false),
            ],
        )
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|word| (*word).to_owned()).collect()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test expectation is not an object: {other}"),
        }
    }

    #[test]
    fn positional_words_fill_params_in_table_order() {
        let params = named_params(&invoice(), &words(&["50000", "coffee", "3600"]));
        assert_eq!(
            params,
            Ok(object(
                json!({"amount_msat": 50000, "description": "coffee", "expiry_secs": 3600})
            ))
        );
    }

    #[test]
    fn key_value_words_fill_params_by_name_in_any_order() {
        let params = named_params(&invoice(), &words(&["description=tip", "amount_msat=any"]));
        assert_eq!(
            params,
            Ok(object(json!({"amount_msat": "any", "description": "tip"})))
        );
    }

    #[test]
    fn positional_then_key_value_words_mix() {
        let params = named_params(
            &pay(),
            &words(&["lnbcrt1abc", "timeout_secs=60", "max_fee_msat=1000"]),
        );
        assert_eq!(
            params,
            Ok(object(
                json!({"bolt11": "lnbcrt1abc", "timeout_secs": 60, "max_fee_msat": 1000})
            ))
        );
    }

    #[test]
    fn setchannel_takes_all_with_key_value_fields_or_positional_numbers() {
        let named = named_params(&setchannel(), &words(&["all", "fee_base_msat=1000"]));
        assert_eq!(
            named,
            Ok(object(json!({"id": "all", "fee_base_msat": 1000})))
        );
        let positional = named_params(&setchannel(), &words(&["103x1x0", "1000", "250", "80"]));
        assert_eq!(
            positional,
            Ok(object(json!({
                "id": "103x1x0", "fee_base_msat": 1000,
                "fee_proportional_millionths": 250, "cltv_expiry_delta": 80
            })))
        );
        let mixed = named_params(
            &setchannel(),
            &words(&["all", "1000", "cltv_expiry_delta=80"]),
        );
        assert_eq!(
            mixed,
            Ok(object(
                json!({"id": "all", "fee_base_msat": 1000, "cltv_expiry_delta": 80})
            ))
        );
        let typo = named_params(&setchannel(), &words(&["all", "fee_ppm=10"]));
        assert!(
            matches!(typo, Err(ParamsError::UnknownKey { ref key, .. }) if key == "fee_ppm"),
            "{typo:?}"
        );
    }

    #[test]
    fn method_without_params_gets_an_empty_object() {
        assert_eq!(
            named_params(&method("getinfo", Vec::new()), &[]),
            Ok(Map::new())
        );
    }

    #[test]
    fn equals_sign_inside_a_description_stays_part_of_the_value() {
        let params = named_params(&invoice(), &words(&["1000", "a=b c=d"]));
        assert_eq!(
            params,
            Ok(object(
                json!({"amount_msat": 1000, "description": "a=b c=d"})
            ))
        );
    }

    #[test]
    fn value_of_key_value_word_may_contain_equals_and_param_names() {
        let params = named_params(&invoice(), &words(&["1000", "description=expiry_secs=60"]));
        assert_eq!(
            params,
            Ok(object(
                json!({"amount_msat": 1000, "description": "expiry_secs=60"})
            ))
        );
    }

    #[test]
    fn bolt11_with_equals_is_sent_positionally_as_is() {
        let odd_invoice = "lnbcrt10u1p=weird=";
        let params = named_params(&pay(), &words(&[odd_invoice, "5000"]));
        assert_eq!(
            params,
            Ok(object(json!({"bolt11": odd_invoice, "amount_msat": 5000})))
        );
    }

    #[test]
    fn bolt11_given_by_key_is_split_only_at_the_first_equals() {
        let params = named_params(&pay(), &words(&["bolt11=lnbcrt1x=y"]));
        assert_eq!(params, Ok(object(json!({"bolt11": "lnbcrt1x=y"}))));
    }

    #[test]
    fn booleans_accept_true_false_1_0_yes_no_in_any_case() {
        for (word, expected) in [
            ("true", true),
            ("False", false),
            ("1", true),
            ("0", false),
            ("yes", true),
            ("NO", false),
        ] {
            let params = named_params(&fundchannel(), &words(&["02ab", "100000", "0", word]));
            assert_eq!(
                params.map(|p| p.get("announce").cloned()),
                Ok(Some(Value::Bool(expected))),
                "{word}"
            );
        }
    }

    #[test]
    fn non_boolean_word_is_sent_as_string_for_the_daemon_to_reject() {
        let params = named_params(
            &fundchannel(),
            &words(&["02ab", "100000", "announce=maybe"]),
        );
        assert_eq!(
            params.map(|p| p.get("announce").cloned()),
            Ok(Some(json!("maybe")))
        );
    }

    #[test]
    fn integer_or_all_takes_a_number_or_the_literal_word() {
        let all = named_params(&withdraw(), &words(&["bcrt1qxyz", "all"]));
        assert_eq!(
            all.map(|p| p.get("amount_sat").cloned()),
            Ok(Some(json!("all")))
        );
        let upper = named_params(&withdraw(), &words(&["bcrt1qxyz", "ALL"]));
        assert_eq!(
            upper.map(|p| p.get("amount_sat").cloned()),
            Ok(Some(json!("all")))
        );
        let number = named_params(&withdraw(), &words(&["bcrt1qxyz", "25000", "2"]));
        assert_eq!(
            number,
            Ok(object(
                json!({"address": "bcrt1qxyz", "amount_sat": 25000, "feerate_sat_per_vb": 2})
            ))
        );
    }

    #[test]
    fn integer_or_word_sends_other_words_as_strings_for_the_daemon_to_reject() {
        let params = named_params(&withdraw(), &words(&["bcrt1qxyz", "everything"]));
        assert_eq!(
            params.map(|p| p.get("amount_sat").cloned()),
            Ok(Some(json!("everything")))
        );
    }

    #[test]
    fn integers_become_numbers_and_non_numbers_stay_strings() {
        assert_eq!(json_value(&ParamKind::Integer, "42"), json!(42));
        assert_eq!(json_value(&ParamKind::Integer, "-7"), json!(-7));
        assert_eq!(
            json_value(&ParamKind::Integer, "18446744073709551615"),
            json!(u64::MAX)
        );
        assert_eq!(
            json_value(&ParamKind::Integer, "18446744073709551616"),
            json!("18446744073709551616")
        );
        assert_eq!(json_value(&ParamKind::Integer, "1.5"), json!("1.5"));
        assert_eq!(json_value(&ParamKind::Integer, "10k"), json!("10k"));
        assert_eq!(json_value(&ParamKind::Integer, ""), json!(""));
    }

    #[test]
    fn strings_and_unknown_types_are_sent_as_is() {
        assert_eq!(json_value(&ParamKind::String, "12"), json!("12"));
        assert_eq!(
            json_value(&ParamKind::Other("hex32".to_owned()), "true"),
            json!("true")
        );
    }

    #[test]
    fn unknown_key_is_reported_with_the_known_names() {
        let error = named_params(&pay(), &words(&["lnbcrt1abc", "max_fee=10"]));
        assert_eq!(
            error,
            Err(ParamsError::UnknownKey {
                method: "pay".to_owned(),
                key: "max_fee".to_owned(),
                known: "bolt11, amount_msat, max_fee_msat, timeout_secs".to_owned(),
            })
        );
    }

    #[test]
    fn unknown_key_after_key_value_words_is_reported_as_unknown_key() {
        let error = named_params(&invoice(), &words(&["amount_msat=1", "descr=tip"]));
        assert!(
            matches!(error, Err(ParamsError::UnknownKey { ref key, .. }) if key == "descr"),
            "{error:?}"
        );
    }

    #[test]
    fn unknown_key_beyond_the_last_param_is_reported_as_unknown_key() {
        let error = named_params(
            &invoice(),
            &words(&["1", "tip", "60", "00ff", "private=yes"]),
        );
        assert!(
            matches!(error, Err(ParamsError::UnknownKey { ref key, .. }) if key == "private"),
            "{error:?}"
        );
    }

    #[test]
    fn too_many_positional_words_are_reported() {
        let error = named_params(&method("getinfo", Vec::new()), &words(&["extra"]));
        assert_eq!(
            error,
            Err(ParamsError::TooMany {
                method: "getinfo".to_owned(),
                max: 0,
                known: "no parameters".to_owned(),
                word: "extra".to_owned(),
            })
        );
        let error = named_params(&withdraw(), &words(&["bcrt1qxyz", "all", "2", "3"]));
        assert!(
            matches!(error, Err(ParamsError::TooMany { max: 3, ref word, .. }) if word == "3"),
            "{error:?}"
        );
    }

    #[test]
    fn missing_required_params_are_all_named() {
        let error = named_params(&invoice(), &words(&["expiry_secs=60"]));
        assert_eq!(
            error,
            Err(ParamsError::MissingRequired {
                method: "invoice".to_owned(),
                missing: vec!["amount_msat".to_owned(), "description".to_owned()],
            })
        );
        let message = error.map_err(|e| e.to_string()).err();
        assert_eq!(
            message.as_deref(),
            Some("`invoice` needs parameters `amount_msat`, `description`")
        );
        let one_missing = named_params(&pay(), &[]).map_err(|e| e.to_string());
        assert_eq!(
            one_missing,
            Err("`pay` needs parameter `bolt11`".to_owned())
        );
    }

    #[test]
    fn optional_params_may_be_left_out() {
        assert_eq!(
            named_params(&pay(), &words(&["lnbcrt1abc"])),
            Ok(object(json!({"bolt11": "lnbcrt1abc"})))
        );
    }

    #[test]
    fn param_given_by_position_and_by_key_is_a_duplicate() {
        let error = named_params(&pay(), &words(&["lnbcrt1abc", "bolt11=lnbcrt1def"]));
        assert_eq!(
            error,
            Err(ParamsError::Duplicate {
                name: "bolt11".to_owned()
            })
        );
        let error = named_params(&pay(), &words(&["bolt11=a", "bolt11=b"]));
        assert_eq!(
            error,
            Err(ParamsError::Duplicate {
                name: "bolt11".to_owned()
            })
        );
    }

    #[test]
    fn positional_word_after_key_value_words_is_refused() {
        let error = named_params(&invoice(), &words(&["amount_msat=any", "tip"]));
        assert_eq!(
            error,
            Err(ParamsError::PositionalAfterNamed {
                word: "tip".to_owned()
            })
        );
    }

    #[test]
    fn description_looking_like_unknown_key_is_accepted_positionally() {
        let params = named_params(&invoice(), &words(&["any", "note=thanks"]));
        assert_eq!(
            params,
            Ok(object(
                json!({"amount_msat": "any", "description": "note=thanks"})
            ))
        );
    }

    #[test]
    fn mistyped_key_in_a_number_position_is_an_unknown_key_not_a_value() {
        let error = named_params(&invoice(), &words(&["amount=100", "tip"]));
        assert!(
            matches!(error, Err(ParamsError::UnknownKey { ref key, .. }) if key == "amount"),
            "{error:?}"
        );
    }

    #[test]
    fn negative_and_odd_words_are_values_not_keys() {
        let params = named_params(&pay(), &words(&["lnbcrt1abc", "-5"]));
        assert_eq!(
            params,
            Ok(object(json!({"bolt11": "lnbcrt1abc", "amount_msat": -5})))
        );
        let params = named_params(&pay(), &words(&["lnbcrt1abc", "=5"]));
        assert_eq!(
            params,
            Ok(object(json!({"bolt11": "lnbcrt1abc", "amount_msat": "=5"})))
        );
    }
}
