//! The daemon's method table, as xlnd serves it from its `help` method: each method's name,
//! description, parameters (name, type, required) and a description of its result. xln-cli knows
//! no method of its own; it learns every method and parameter from this table.

use std::fmt;

use serde::Deserialize;

/// The answer of xlnd's `help` method: all methods, or the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HelpTable {
    /// The methods, in the order the daemon lists them.
    pub methods: Vec<MethodHelp>,
}

impl HelpTable {
    /// The entry of the method called `name`, if the table has one.
    pub fn method(&self, name: &str) -> Option<&MethodHelp> {
        self.methods.iter().find(|method| method.name == name)
    }
}

/// One method of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MethodHelp {
    /// The JSON-RPC method name, e.g. `pay`.
    pub name: String,
    /// What the method does.
    #[serde(default)]
    pub description: String,
    /// The parameters in positional order.
    #[serde(default)]
    pub params: Vec<ParamHelp>,
    /// Text describing the fields of the result.
    #[serde(default)]
    pub result: String,
}

impl MethodHelp {
    /// The parameter called `name`, if the method has one.
    pub fn param(&self, name: &str) -> Option<&ParamHelp> {
        self.params.iter().find(|param| param.name == name)
    }

    /// The parameter names joined with ", " for messages ("no parameters" when there are none).
    pub fn param_names(&self) -> String {
        if self.params.is_empty() {
            return "no parameters".to_owned();
        }
        let names: Vec<&str> = self
            .params
            .iter()
            .map(|param| param.name.as_str())
            .collect();
        names.join(", ")
    }
}

/// One parameter of a method.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ParamHelp {
    /// The parameter's name, the key in the named-params object, e.g. `amount_msat`.
    pub name: String,
    /// Its JSON type, which decides how a command-line word is converted.
    #[serde(rename = "type")]
    pub kind: ParamKind,
    /// Whether the method fails without it.
    #[serde(default)]
    pub required: bool,
    /// What it means.
    #[serde(default)]
    pub description: String,
}

/// The type of a parameter, from the table's `type` field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ParamKind {
    /// `string`: sent as the word itself.
    String,
    /// `integer`: sent as a JSON number.
    Integer,
    /// `boolean`: sent as JSON true/false.
    Boolean,
    /// `integer|<word>` (e.g. `integer|all`, `integer|any`): a JSON number or that literal word.
    IntegerOrWord(String),
    /// A type this xln-cli does not know (a newer daemon); sent as a string for the daemon to judge.
    Other(String),
}

impl From<String> for ParamKind {
    fn from(type_name: String) -> Self {
        match type_name.as_str() {
            "string" => ParamKind::String,
            "integer" => ParamKind::Integer,
            "boolean" => ParamKind::Boolean,
            _ => match type_name.split_once('|') {
                Some(("integer", word)) if !word.is_empty() && !word.contains('|') => {
                    ParamKind::IntegerOrWord(word.to_owned())
                }
                _ => ParamKind::Other(type_name),
            },
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::String => f.write_str("string"),
            ParamKind::Integer => f.write_str("integer"),
            ParamKind::Boolean => f.write_str("boolean"),
            ParamKind::IntegerOrWord(word) => write!(f, "integer|{word}"),
            ParamKind::Other(type_name) => f.write_str(type_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_in_the_daemons_format_is_read_with_types() -> Result<(), serde_json::Error> {
        let table: HelpTable = serde_json::from_str(
            r#"{"methods": [{"name": "withdraw", "description": "Send on-chain.",
                "params": [
                  {"name": "address", "type": "string", "required": true, "description": "Where"},
                  {"name": "amount_sat", "type": "integer|all", "required": true, "description": "How much"},
                  {"name": "feerate_sat_per_vb", "type": "integer", "required": false, "description": "Fee"}
                ],
                "result": "txid"}]}"#,
        )?;
        let withdraw = table.method("withdraw");
        assert_eq!(withdraw.map(|m| m.params.len()), Some(3));
        assert_eq!(
            withdraw
                .and_then(|m| m.param("amount_sat"))
                .map(|p| &p.kind),
            Some(&ParamKind::IntegerOrWord("all".to_owned()))
        );
        assert_eq!(
            withdraw.map(MethodHelp::param_names).as_deref(),
            Some("address, amount_sat, feerate_sat_per_vb")
        );
        assert!(table.method("pay").is_none());
        Ok(())
    }

    #[test]
    fn every_type_name_prints_as_the_daemon_wrote_it() {
        for type_name in [
            "string",
            "integer",
            "boolean",
            "integer|all",
            "integer|any",
            "msat|whatever",
            "integer|",
        ] {
            assert_eq!(ParamKind::from(type_name.to_owned()).to_string(), type_name);
        }
        assert_eq!(
            ParamKind::from("integer|".to_owned()),
            ParamKind::Other("integer|".to_owned())
        );
    }

    /// The table xlnd serves is generated from the contract this CLI compiles too: every method
    /// of it reads, and every parameter type is one this CLI converts words for.
    #[test]
    fn the_contracts_help_table_reads_with_known_types() -> Result<(), serde_json::Error> {
        let served = rpc_contract::node::HelpResult {
            methods: rpc_contract::method_docs()
                .iter()
                .map(rpc_contract::node::MethodHelp::from)
                .collect(),
        };
        let table: HelpTable = serde_json::from_value(serde_json::to_value(&served)?)?;
        assert_eq!(table.methods.len(), served.methods.len());
        for method in &table.methods {
            for param in &method.params {
                assert!(
                    !matches!(param.kind, ParamKind::Other(_)),
                    "{}.{} has type {}",
                    method.name,
                    param.name,
                    param.kind
                );
            }
        }
        let pay = table.method("pay");
        assert!(pay.is_some_and(|m| m.result.contains("status (")));
        Ok(())
    }

    #[test]
    fn method_without_params_says_so() {
        let getinfo = MethodHelp {
            name: "getinfo".to_owned(),
            description: String::new(),
            params: Vec::new(),
            result: String::new(),
        };
        assert_eq!(getinfo.param_names(), "no parameters");
    }
}
