//! Turning a call's `params` (an array in positional order, an object by name, or nothing) into
//! a method's params struct, with errors that name the parameter at fault.

use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use crate::describe::MethodDoc;

/// Why a call's params were refused (JSON-RPC error -32602).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter at fault, if it is one parameter.
    pub param: Option<String>,
    /// What was wrong, and what to do.
    pub message: String,
}

impl ParamError {
    /// A problem with `param`.
    pub fn of(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            param: Some(param.to_owned()),
            message: message.into(),
        }
    }

    /// The error's `data` object: `{"kind": "invalid_parameter", "param": …}` (`param` null when
    /// no single parameter is at fault).
    pub fn data(&self) -> Value {
        serde_json::json!({ "kind": "invalid_parameter", "param": self.param })
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

/// The field names of struct `T` in declaration order, which is the positional order of a
/// params struct. Serde's derive hands them to `deserialize_struct`; this deserializer only
/// records them.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names = None;
    let _ = T::deserialize(FieldNames(&mut names));
    names.unwrap_or(&[])
}

struct FieldNames<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(serde::de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// `usage: invoice amount_msat description [expiry_secs] [payment_hash]`.
pub fn usage(method: &MethodDoc) -> String {
    let mut usage = format!("usage: {}", method.name);
    for param in &method.params {
        if param.required {
            usage.push_str(&format!(" {}", param.name));
        } else {
            usage.push_str(&format!(" [{}]", param.name));
        }
    }
    usage
}

/// The call's params as a by-name map, checked against the method's parameter list: positional
/// arrays are mapped in order; `null` values are left out; unknown names, too many values and
/// missing required ones are refused.
pub fn named(method: &MethodDoc, params: Value) -> Result<Map<String, Value>, ParamError> {
    let whole = |message: String| ParamError {
        param: None,
        message: format!("{message}; {}", usage(method)),
    };
    let mut map = Map::new();
    match params {
        Value::Null => {}
        Value::Array(values) => {
            if values.len() > method.params.len() {
                return Err(whole(format!(
                    "{} takes at most {} params",
                    method.name,
                    method.params.len()
                )));
            }
            for (param, value) in method.params.iter().zip(values) {
                if !value.is_null() {
                    map.insert(param.name.clone(), value);
                }
            }
        }
        Value::Object(object) => {
            for (key, value) in object {
                if method.param(&key).is_none() {
                    return Err(ParamError {
                        param: Some(key.clone()),
                        message: format!("{} has no param {key:?}; {}", method.name, usage(method)),
                    });
                }
                if !value.is_null() {
                    map.insert(key, value);
                }
            }
        }
        _ => return Err(whole("params must be an array or an object".to_owned())),
    }
    if let Some(missing) = method
        .params
        .iter()
        .find(|p| p.required && !map.contains_key(&p.name))
    {
        return Err(ParamError::of(
            &missing.name,
            format!("missing param {}; {}", missing.name, usage(method)),
        ));
    }
    Ok(map)
}

/// The params struct `P` of `method` from the call's `params` (`None`: no params given).
pub fn parse<P: DeserializeOwned>(
    method: &MethodDoc,
    params: Option<Value>,
) -> Result<P, ParamError> {
    let map = named(method, params.unwrap_or(Value::Null))?;
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|error| {
        let param = error.path().to_string();
        let reason = reworded(error.into_inner().to_string());
        if param.is_empty() || param == "." {
            return ParamError {
                param: None,
                message: format!("{reason}; {}", usage(method)),
            };
        }
        // Our own value types word their reasons to follow the name ("must be …");
        // serde's own ("invalid type: …") read better after a colon.
        let message = if reason.starts_with("must ") || reason.contains(" is too large") {
            format!("{param} {reason}")
        } else {
            format!("{param}: {reason}")
        };
        ParamError {
            param: Some(param),
            message,
        }
    })
}

/// serde's refusal of an unknown word, ``unknown variant `jump`, expected one of `forward`,
/// `fail`, `settle` ``, as a sentence that follows the parameter's name, like our own types'
/// reasons: `must be one of forward, fail, settle, not "jump"`. Other reasons are kept.
fn reworded(reason: String) -> String {
    let Some(rest) = reason.strip_prefix("unknown variant `") else {
        return reason;
    };
    let Some((word, expected)) = rest.split_once("`, expected ") else {
        return reason;
    };
    let expected = expected.replace('`', "");
    let choices = expected
        .strip_prefix("one of ")
        .map_or_else(|| expected.clone(), |list| format!("one of {list}"));
    format!("must be {choices}, not {word:?}")
}

/// The `params` member of a call, as its JSON text (`None` when absent), read as a value.
pub fn params_value(params_json: Option<&str>) -> Result<Option<Value>, ParamError> {
    params_json
        .map(|text| {
            serde_json::from_str::<Value>(text).map_err(|e| ParamError {
                param: None,
                message: format!("params are not JSON: {e}"),
            })
        })
        .transpose()
}

/// Checks `params_json` (the `params` member of a call; `None` when absent) as the params of
/// method `name`, as xlnd does before it calls the handler, and returns them as the method's
/// params struct would send them by name. For callers that hold a method's name rather than its
/// type: the fuzz targets, and clients that want to check a call before they send it.
pub fn check_call(name: &str, params_json: Option<&str>) -> Result<Value, ParamError> {
    let params = params_value(params_json)?;
    crate::for_each_method!(check_one, name, &params)
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_else(|| {
            Err(ParamError {
                param: None,
                message: format!("no method {name:?}"),
            })
        })
}

/// [`check_call`] for method `M`, if `name` is its name.
fn check_one<M: crate::Method>(
    name: &str,
    params: &Option<Value>,
) -> Option<Result<Value, ParamError>> {
    if M::NAME != name {
        return None;
    }
    let method = crate::describe::method_doc::<M>();
    let checked = parse::<M::Params>(method, params.clone()).and_then(|typed| {
        serde_json::to_value(typed).map_err(|e| ParamError {
            param: None,
            message: format!("the params could not be written back: {e}"),
        })
    });
    Some(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_are_refused_with_the_choices() {
        assert_eq!(
            reworded("unknown variant `jump`, expected one of `forward`, `fail`, `settle`".into()),
            "must be one of forward, fail, settle, not \"jump\""
        );
        assert_eq!(
            reworded("unknown variant `x`, expected `settled` or `failed`".into()),
            "must be settled or failed, not \"x\""
        );
        assert_eq!(
            reworded("invalid type: integer".into()),
            "invalid type: integer"
        );
    }

    #[test]
    fn a_call_by_name_is_checked_into_its_params() {
        let checked = check_call(
            "resolvehtlc",
            Some(&format!(r#"["{}", "jump"]"#, "ab".repeat(32))),
        );
        let error = checked.err().map(|e| e.message);
        assert_eq!(
            error.as_deref(),
            Some("action must be one of forward, fail, settle, not \"jump\"")
        );
        assert!(check_call("nosuchmethod", None).is_err());
        let listed = check_call("listinterceptedhtlcs", Some(r#"{"status": "pending"}"#));
        assert_eq!(listed.ok(), Some(serde_json::json!({"status": "pending"})));
    }
}
