//! Descriptions generated from the contract's types: each method's parameter list (what `help`
//! serves and xln-cli converts words with), the OpenRPC 1.2.6 document of `rpc.discover`, and
//! the method reference of `docs/rpc.md`.
//!
//! Parameter order comes from the params struct's field order (through serde), descriptions from
//! the `///` of each field (through schemars), types from the JSON Schema of each field.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::events::SUBSCRIPTIONS;
use crate::params::field_names;
use crate::types::PARAM_TYPE_KEYWORD;
use crate::Method;

/// Where the result types' schemas live in the OpenRPC document.
const COMPONENTS_PATH: &str = "/components/schemas/";

/// One parameter of a method.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDoc {
    /// Its name, the key in by-name calls.
    pub name: String,
    /// Its type as `help` shows it: `string`, `integer`, `boolean`, `integer|all`, `integer|any`.
    pub param_type: String,
    /// Whether the call fails without it.
    pub required: bool,
    /// What it means (the field's `///`).
    pub description: String,
    /// Its JSON Schema, with every subschema inline.
    pub schema: Value,
}

/// One method: its parameters in positional order and its result's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodDoc {
    /// The JSON-RPC method name.
    pub name: String,
    /// Summary line, then details (markdown).
    pub description: String,
    /// Parameters, in positional order.
    pub params: Vec<ParamDoc>,
    /// The result's JSON Schema; references point into [`Contract::components`].
    pub result_schema: Value,
    /// The result's fields, one line each: `path (type): meaning`.
    pub result_text: String,
}

impl MethodDoc {
    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamDoc> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The first line of the description.
    pub fn summary(&self) -> &str {
        self.description.lines().next().unwrap_or_default()
    }

    /// The description after its first line, trimmed.
    pub fn details(&self) -> &str {
        self.description
            .split_once('\n')
            .map_or("", |(_, rest)| rest.trim())
    }
}

/// Every method of the contract, and the schemas their results share.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// The methods in the order of [`for_each_method`](crate::for_each_method).
    pub methods: Vec<MethodDoc>,
    /// Named schemas of result types (`#/components/schemas/<name>`).
    pub components: Map<String, Value>,
}

impl Contract {
    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodDoc> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// The contract, described once per process.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(build)
}

/// Every method, in order.
pub fn method_docs() -> &'static [MethodDoc] {
    &contract().methods
}

/// The description of method `M`.
pub fn method_doc<M: Method>() -> &'static MethodDoc {
    // Every `Method` is listed in `for_each_method!`; a test checks that names are unique.
    contract()
        .method(M::NAME)
        .unwrap_or_else(|| unlisted_method(M::NAME))
}

#[cold]
fn unlisted_method(name: &str) -> ! {
    panic!("method {name} is missing from for_each_method!")
}

struct Generators {
    params: SchemaGenerator,
    results: SchemaGenerator,
}

fn build() -> Contract {
    let mut generators = Generators {
        params: SchemaSettings::draft07()
            .for_deserialize()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .into_generator(),
        results: SchemaSettings::draft07()
            .for_serialize()
            .with(|s| {
                s.definitions_path = COMPONENTS_PATH.trim_end_matches('/').into();
                s.meta_schema = None;
            })
            .into_generator(),
    };
    let mut methods: Vec<MethodDoc> = crate::for_each_method!(describe, &mut generators);
    let components = generators.results.take_definitions(true);
    for method in &mut methods {
        let mut lines = Vec::new();
        result_fields(&method.result_schema, &components, "", &mut lines);
        method.result_text = lines
            .iter()
            .map(|f| format!("{} ({}): {}", f.path, f.type_text, f.description))
            .collect::<Vec<_>>()
            .join("\n");
    }
    Contract {
        methods,
        components,
    }
}

fn describe<M: Method>(generators: &mut Generators) -> MethodDoc {
    let params_schema = generators.params.root_schema_for::<M::Params>();
    let params_schema = params_schema.as_value();
    let required: Vec<&str> = params_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let params = field_names::<M::Params>()
        .iter()
        .map(|name| {
            let schema = params_schema
                .get("properties")
                .and_then(|p| p.get(*name))
                .cloned()
                .unwrap_or(Value::Bool(true));
            ParamDoc {
                name: (*name).to_owned(),
                param_type: param_type(&schema),
                required: required.contains(name),
                description: description_of(&schema),
                schema,
            }
        })
        .collect();
    let result_schema = generators.results.subschema_for::<M::Result>().to_value();
    MethodDoc {
        name: M::NAME.to_owned(),
        description: M::DESCRIPTION.trim().to_owned(),
        params,
        result_schema,
        result_text: String::new(),
    }
}

/// A JSON Schema of `T` alone, for types outside the methods (subscription events).
fn inline_schema_of<T: JsonSchema>() -> Value {
    SchemaSettings::draft07()
        .for_serialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .root_schema_for::<T>()
        .to_value()
}

fn description_of(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .replace('\n', " ")
}

/// The type `help` shows for a parameter's schema.
fn param_type(schema: &Value) -> String {
    if let Some(declared) = schema.get(PARAM_TYPE_KEYWORD).and_then(Value::as_str) {
        return declared.to_owned();
    }
    match schema.get("type") {
        Some(Value::String(name)) if name != "null" => return name.clone(),
        Some(Value::Array(names)) => {
            if let Some(name) = names
                .iter()
                .filter_map(Value::as_str)
                .find(|n| *n != "null")
            {
                return name.to_owned();
            }
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(choices)) = schema.get(key) {
            for choice in choices {
                let found = param_type(choice);
                if found != "any" && found != "null" {
                    return found;
                }
            }
        }
    }
    "any".to_owned()
}

/// One field of a result, for `help` and the docs.
struct ResultField {
    path: String,
    type_text: String,
    description: String,
}

fn resolve<'a>(schema: &'a Value, components: &'a Map<String, Value>) -> &'a Value {
    // A reference with a description beside it is wrapped in a one-element allOf (draft 7
    // ignores siblings of $ref).
    if let Some([only]) = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return resolve(only, components);
    }
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix(&format!("#{COMPONENTS_PATH}"))
            .and_then(|name| components.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The schema of the object inside `schema` (itself, or its non-null alternative), if it has
/// properties.
fn object_schema<'a>(
    schema: &'a Value,
    components: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    let schema = resolve(schema, components);
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        return Some(properties);
    }
    schema
        .get("anyOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|choice| object_schema(choice, components))
}

fn result_fields(
    schema: &Value,
    components: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<ResultField>,
) {
    let Some(properties) = object_schema(schema, components) else {
        return;
    };
    for (name, property) in properties {
        let path = format!("{prefix}{name}");
        out.push(ResultField {
            path: path.clone(),
            type_text: type_text(property, components),
            description: description_of(property),
        });
        let resolved = resolve(property, components);
        if let Some(items) = resolved.get("items") {
            result_fields(items, components, &format!("{path}[]."), out);
        } else if resolved.get("additionalProperties").is_none() {
            result_fields(property, components, &format!("{path}."), out);
        }
    }
}

/// A short type text: `string`, `integer|null`, `array of object`, `"mutual"|"unilateral"`.
fn type_text(schema: &Value, components: &Map<String, Value>) -> String {
    let schema = resolve(schema, components);
    if let Some(Value::Array(values)) = schema.get("enum") {
        return values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("|");
    }
    if let Some(value) = schema.get("const") {
        return value.to_string();
    }
    let names: Vec<String> = match schema.get("type") {
        Some(Value::String(name)) => vec![name.clone()],
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if !names.is_empty() {
        return names
            .iter()
            .map(|name| match (name.as_str(), schema.get("items")) {
                ("array", Some(items)) => format!("array of {}", type_text(items, components)),
                _ => name.clone(),
            })
            .collect::<Vec<_>>()
            .join("|");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(choices)) = schema.get(key) {
            return choices
                .iter()
                .map(|choice| type_text(choice, components))
                .collect::<Vec<_>>()
                .join("|");
        }
    }
    if schema.get("properties").is_some() {
        return "object".to_owned();
    }
    "any".to_owned()
}

/// The OpenRPC 1.2.6 document that `rpc.discover` returns.
pub fn openrpc_document() -> Value {
    let contract = contract();
    let methods: Vec<Value> = contract
        .methods
        .iter()
        .map(|method| {
            json!({
                "name": method.name,
                "summary": method.summary(),
                "description": method.details(),
                "paramStructure": "either",
                "params": method.params.iter().map(|param| json!({
                    "name": param.name,
                    "description": param.description,
                    "required": param.required,
                    "schema": param.schema,
                })).collect::<Vec<_>>(),
                "result": {"name": "result", "schema": method.result_schema},
            })
        })
        .collect();
    let subscriptions: Vec<Value> = SUBSCRIPTIONS
        .iter()
        .map(|s| {
            json!({
                "name": s.subscribe,
                "unsubscribe": s.unsubscribe,
                "notification": s.notification,
                "summary": s.description,
                "params": [{
                    "name": "since_index",
                    "description": crate::events::SINCE_INDEX_DESCRIPTION,
                    "required": false,
                    "schema": inline_schema_of::<Option<crate::types::Index>>(),
                }],
                "notificationSchema": inline_schema_of::<crate::events::Event>(),
            })
        })
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {
            "title": "xlnd JSON-RPC",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON-RPC API of xlnd, the xln Lightning daemon (docs/rpc.md).",
        },
        "methods": methods,
        "components": {"schemas": contract.components},
        "x-subscriptions": subscriptions,
    })
}

/// Markers around the generated part of `docs/rpc.md`.
pub const DOCS_BEGIN: &str =
    "<!-- BEGIN GENERATED METHODS: from rpc-contract; regenerate with UPDATE_RPC_DOCS=1 cargo test -p rpc-contract -->";
/// End marker of the generated part.
pub const DOCS_END: &str = "<!-- END GENERATED METHODS -->";

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The method reference of `docs/rpc.md`, between [`DOCS_BEGIN`] and [`DOCS_END`].
pub fn markdown_methods() -> String {
    let contract = contract();
    let mut out = format!("{DOCS_BEGIN}\n\n");
    out.push_str(
        "| Method | Parameters (in positional order; optional ones in brackets) | What it does |\n|---|---|---|\n",
    );
    for method in &contract.methods {
        let signature = crate::params::usage(method);
        let signature = signature
            .strip_prefix(&format!("usage: {}", method.name))
            .unwrap_or_default()
            .trim();
        let signature = if signature.is_empty() {
            String::new()
        } else {
            format!("`{signature}`")
        };
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} |\n",
            method.name,
            method.name.replace('.', ""),
            cell(&signature),
            cell(method.summary())
        ));
    }
    for method in &contract.methods {
        out.push_str(&format!("\n### {}\n\n{}\n", method.name, method.summary()));
        if method.params.is_empty() {
            out.push_str("\nNo parameters.\n");
        } else {
            out.push_str(
                "\n| # | Parameter | Type | Required | Meaning |\n|---|---|---|---|---|\n",
            );
            for (position, param) in method.params.iter().enumerate() {
                out.push_str(&format!(
                    "| {} | `{}` | {} | {} | {} |\n",
                    position + 1,
                    param.name,
                    cell(&param.param_type),
                    if param.required { "yes" } else { "no" },
                    cell(&param.description)
                ));
            }
        }
        let mut fields = Vec::new();
        result_fields(&method.result_schema, &contract.components, "", &mut fields);
        if fields.is_empty() {
            out.push_str("\nResult: `{}`.\n");
        } else {
            out.push_str("\n| Result field | Type | Meaning |\n|---|---|---|\n");
            for field in fields {
                out.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    field.path,
                    cell(&field.type_text),
                    cell(&field.description)
                ));
            }
        }
        if !method.details().is_empty() {
            out.push_str(&format!("\n{}\n", method.details()));
        }
    }
    out.push_str(&format!("\n{DOCS_END}"));
    out
}

/// `docs` with its generated part replaced by [`markdown_methods`]; `None` without the markers.
pub fn with_generated_methods(docs: &str) -> Option<String> {
    let begin = docs.find(DOCS_BEGIN)?;
    let end = docs[begin..].find(DOCS_END)? + begin + DOCS_END.len();
    Some(format!(
        "{}{}{}",
        &docs[..begin],
        markdown_methods(),
        &docs[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_are_unique_and_every_field_is_documented() {
        let contract = contract();
        let mut names: Vec<&str> = contract.methods.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), contract.methods.len());
        for method in &contract.methods {
            assert!(!method.summary().is_empty(), "{}", method.name);
            for param in &method.params {
                assert!(
                    !param.description.is_empty(),
                    "{}.{}",
                    method.name,
                    param.name
                );
                assert_ne!(param.param_type, "any", "{}.{}", method.name, param.name);
            }
            let mut fields = Vec::new();
            result_fields(&method.result_schema, &contract.components, "", &mut fields);
            for field in fields {
                assert!(
                    !field.description.is_empty(),
                    "{} result {}",
                    method.name,
                    field.path
                );
            }
        }
    }

    #[test]
    fn params_keep_their_positional_order_and_types() {
        let withdraw = contract().method("withdraw");
        let params: Vec<(&str, &str, bool)> = withdraw
            .map(|m| {
                m.params
                    .iter()
                    .map(|p| (p.name.as_str(), p.param_type.as_str(), p.required))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            params,
            [
                ("address", "string", true),
                ("amount_sat", "integer|all", true),
                ("feerate_sat_per_vb", "integer", false)
            ]
        );
        let invoice = contract().method("invoice");
        assert_eq!(
            invoice
                .and_then(|m| m.params.first())
                .map(|p| p.param_type.as_str()),
            Some("integer|any")
        );
        let fundchannel = contract().method("fundchannel");
        assert_eq!(
            fundchannel
                .and_then(|m| m.param("announce"))
                .map(|p| p.param_type.as_str()),
            Some("boolean")
        );
    }

    #[test]
    fn openrpc_document_lists_every_method_with_resolvable_results() {
        let document = openrpc_document();
        assert_eq!(document["openrpc"], "1.2.6");
        let methods = document["methods"].as_array().map(Vec::len);
        assert_eq!(methods, Some(contract().methods.len()));
        let text = document.to_string();
        for (name, _) in &contract().components {
            assert!(
                text.contains(&format!("#{COMPONENTS_PATH}{name}")),
                "{name}"
            );
        }
        assert!(
            !text.contains("#/definitions/"),
            "a reference outside components"
        );
    }

    /// Fails when docs/rpc.md's method reference is not what the contract generates.
    #[test]
    fn docs_rpc_md_method_reference_is_generated_from_the_contract() -> std::io::Result<()> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rpc.md");
        let docs = std::fs::read_to_string(&path)?;
        let generated = with_generated_methods(&docs);
        assert!(
            generated.is_some(),
            "docs/rpc.md has no {DOCS_BEGIN} … {DOCS_END} markers"
        );
        let generated = generated.unwrap_or_default();
        if std::env::var_os("UPDATE_RPC_DOCS").is_some() {
            std::fs::write(&path, &generated)?;
            return Ok(());
        }
        assert!(
            generated == docs,
            "docs/rpc.md's method reference differs from the contract's types; regenerate it with \
             `UPDATE_RPC_DOCS=1 cargo test -p rpc-contract docs_rpc_md` and commit the result"
        );
        Ok(())
    }
}
