//! The parameter value types: what each accepts on the wire, checked while the params are
//! deserialized, so that a bad value is refused before a handler runs and its error names the
//! parameter. Integers are JSON numbers or strings of decimal digits and have an upper limit;
//! ids are hex strings of a fixed length, parsed into bytes.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The schema keyword that carries a parameter's type as `help` shows it (`integer|all`, …),
/// where the JSON Schema alone cannot say it (an integer that may also be a digit string).
pub const PARAM_TYPE_KEYWORD: &str = "x-param-type";

/// 21 million coins, in satoshis: the upper limit of every `_sat` parameter.
pub const MAX_SAT: u64 = 21_000_000 * 100_000_000;
/// The same in millisatoshis: the upper limit of every `_msat` parameter.
pub const MAX_MSAT: u64 = MAX_SAT * 1000;
/// The longest wait a `timeout_secs` of `pay`, `keysend` and `waitinvoice` allows: a day.
pub const MAX_WAIT_SECS: u64 = 86_400;

/// A non-negative integer of at most `MAX`: a JSON number, or a string of decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uint<const MAX: u64>(pub u64);

/// An amount in satoshis, at most 21 million coins.
pub type Sat = Uint<MAX_SAT>;
/// An amount in millisatoshis, at most 21 million coins.
pub type Msat = Uint<MAX_MSAT>;
/// Any `u64`.
pub type Index = Uint<{ u64::MAX }>;

impl<const MAX: u64> Uint<MAX> {
    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// `value` as an integer of at most `max`, or the end of a message that follows the param name.
fn uint_value(value: &Value, max: u64) -> Result<u64, String> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        _ => None,
    };
    match number {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(format!("{value} is too large (at most {max})")),
        None if matches!(value, Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty()) => {
            Err(format!("{value} is too large (at most {max})"))
        }
        None => Err(format!("must be a non-negative integer, not {value}")),
    }
}

impl<'de, const MAX: u64> Deserialize<'de> for Uint<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        uint_value(&value, MAX).map(Uint).map_err(D::Error::custom)
    }
}

impl<const MAX: u64> Serialize for Uint<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

fn uint_schema(max: u64, param_type: &str) -> Schema {
    json_schema!({
        PARAM_TYPE_KEYWORD: param_type,
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": max},
            {"type": "string", "pattern": "^[0-9]+$"},
        ]
    })
}

impl<const MAX: u64> JsonSchema for Uint<MAX> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Uint{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        uint_schema(MAX, "integer")
    }
}

/// An integer that may instead be one literal word (`all`, `any`), for amounts.
fn uint_or_word(value: &Value, max: u64, word: &str) -> Result<Option<u64>, String> {
    match value {
        Value::String(s) if s == word => Ok(None),
        _ => uint_value(value, max).map(Some).map_err(|reason| {
            if reason.starts_with("must") {
                format!("must be a non-negative integer or \"{word}\", not {value}")
            } else {
                reason
            }
        }),
    }
}

fn uint_or_word_schema(max: u64, word: &str) -> Schema {
    json_schema!({
        PARAM_TYPE_KEYWORD: format!("integer|{word}"),
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": max},
            {"type": "string", "pattern": "^[0-9]+$"},
            {"const": word},
        ]
    })
}

/// `withdraw`'s amount: satoshis, or everything the wallet can spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SatOrAll {
    /// This many satoshis.
    Sat(u64),
    /// `"all"`.
    All,
}

impl<'de> Deserialize<'de> for SatOrAll {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match uint_or_word(&value, MAX_SAT, "all").map_err(D::Error::custom)? {
            Some(sat) => Ok(SatOrAll::Sat(sat)),
            None => Ok(SatOrAll::All),
        }
    }
}

impl Serialize for SatOrAll {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SatOrAll::Sat(sat) => serializer.serialize_u64(*sat),
            SatOrAll::All => serializer.serialize_str("all"),
        }
    }
}

impl JsonSchema for SatOrAll {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "SatOrAll".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        uint_or_word_schema(MAX_SAT, "all")
    }
}

/// `invoice`'s amount: millisatoshis, or any amount the payer chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsatOrAny {
    /// This many millisatoshis.
    Msat(u64),
    /// `"any"`.
    Any,
}

impl MsatOrAny {
    /// The amount, `None` for any.
    pub fn msat(self) -> Option<u64> {
        match self {
            MsatOrAny::Msat(msat) => Some(msat),
            MsatOrAny::Any => None,
        }
    }
}

impl<'de> Deserialize<'de> for MsatOrAny {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match uint_or_word(&value, MAX_MSAT, "any").map_err(D::Error::custom)? {
            Some(msat) => Ok(MsatOrAny::Msat(msat)),
            None => Ok(MsatOrAny::Any),
        }
    }
}

impl Serialize for MsatOrAny {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MsatOrAny::Msat(msat) => serializer.serialize_u64(*msat),
            MsatOrAny::Any => serializer.serialize_str("any"),
        }
    }
}

impl JsonSchema for MsatOrAny {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "MsatOrAny".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        uint_or_word_schema(MAX_MSAT, "any")
    }
}

/// `N` bytes written as `2N` hex characters (either case).
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_schema(chars: usize) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^[0-9a-fA-F]{{{chars}}}$"),
    })
}

/// A node id: a compressed public key, 66 hex characters. Whether it is a point on the curve is
/// checked where it is used.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub [u8; 33]);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl std::str::FromStr for NodeId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        hex_bytes::<33>(text)
            .map(NodeId)
            .ok_or_else(|| format!("must be a node id (66 hex characters), not {text:?}"))
    }
}

/// 32 bytes as 64 hex characters: a payment hash or a preimage.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash32(pub [u8; 32]);

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({self})")
    }
}

impl std::str::FromStr for Hash32 {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        hex_bytes::<32>(text)
            .map(Hash32)
            .ok_or_else(|| format!("must be 64 hex characters, not {text:?}"))
    }
}

/// A short channel id `BLOCKxTXxOUT` (e.g. `103x1x0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortChannelId {
    /// Height of the funding transaction's block.
    pub block: u32,
    /// Its position in the block.
    pub tx: u32,
    /// The channel's output index.
    pub output: u16,
}

impl ShortChannelId {
    /// The 64-bit form of BOLT 7.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.block) << 40) | (u64::from(self.tx) << 16) | u64::from(self.output)
    }
}

impl fmt::Display for ShortChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.block, self.tx, self.output)
    }
}

impl std::str::FromStr for ShortChannelId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("must be a short channel id BLOCKxTXxOUT, not {text:?}");
        let mut parts = text.split('x');
        let (Some(block), Some(tx), Some(output), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let block: u32 = block.parse().map_err(|_| bad())?;
        let tx: u32 = tx.parse().map_err(|_| bad())?;
        let output: u16 = output.parse().map_err(|_| bad())?;
        if block >= 1 << 24 || tx >= 1 << 24 {
            return Err(bad());
        }
        Ok(ShortChannelId { block, tx, output })
    }
}

/// Serde and schema for a type written as a string through `Display`/`FromStr`, whose parse
/// errors are sentences that follow the parameter's name.
macro_rules! string_param {
    ($type:ty, $name:literal, $schema:expr) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                match &value {
                    Value::String(text) => text.parse().map_err(D::Error::custom),
                    other => Err(D::Error::custom(format!("must be a string, not {other}"))),
                }
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl JsonSchema for $type {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

string_param!(NodeId, "NodeId", hex_schema(66));
string_param!(Hash32, "Hash32", hex_schema(64));
string_param!(
    ShortChannelId,
    "ShortChannelId",
    json_schema!({"type": "string", "pattern": "^[0-9]+x[0-9]+x[0-9]+$"})
);

/// What `close` closes: a channel by id or short channel id, or the one channel with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRef {
    /// A channel id, 64 hex characters.
    ChannelId(Hash32),
    /// A short channel id, `BLOCKxTXxOUT`.
    ShortChannelId(ShortChannelId),
    /// A short channel id in its 64-bit number form.
    ShortChannelIdNumber(u64),
    /// The peer of our only channel with it.
    Peer(NodeId),
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelRef::ChannelId(id) => id.fmt(f),
            ChannelRef::ShortChannelId(scid) => scid.fmt(f),
            ChannelRef::ShortChannelIdNumber(number) => number.fmt(f),
            ChannelRef::Peer(node_id) => node_id.fmt(f),
        }
    }
}

impl std::str::FromStr for ChannelRef {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(id) = text.parse() {
            return Ok(ChannelRef::ChannelId(id));
        }
        if let Ok(node_id) = text.parse() {
            return Ok(ChannelRef::Peer(node_id));
        }
        if let Ok(scid) = text.parse() {
            return Ok(ChannelRef::ShortChannelId(scid));
        }
        if let Ok(number) = text.parse() {
            return Ok(ChannelRef::ShortChannelIdNumber(number));
        }
        Err(format!(
            "must be a channel id (64 hex characters), a short channel id (BLOCKxTXxOUT) or a \
             peer's node id (66 hex characters), not {text:?}"
        ))
    }
}

string_param!(
    ChannelRef,
    "ChannelRef",
    json_schema!({"type": "string", "pattern": "^([0-9a-fA-F]{64}|[0-9a-fA-F]{66}|[0-9]+x[0-9]+x[0-9]+|[0-9]+)$"})
);

/// `setchannel`'s channels: every channel, or the ones a [`ChannelRef`] names (a peer id names
/// all channels with that peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelSelector {
    /// `"all"`: every channel that is not closing.
    All,
    /// The channel(s) named.
    Named(ChannelRef),
}

impl fmt::Display for ChannelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelSelector::All => f.write_str("all"),
            ChannelSelector::Named(reference) => reference.fmt(f),
        }
    }
}

impl std::str::FromStr for ChannelSelector {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "all" {
            return Ok(ChannelSelector::All);
        }
        text.parse().map(ChannelSelector::Named).map_err(|_| {
            format!(
                "must be a channel id, a short channel id (BLOCKxTXxOUT), a peer's node id or \"all\", not {text:?}"
            )
        })
    }
}

string_param!(
    ChannelSelector,
    "ChannelSelector",
    json_schema!({"type": "string", "pattern": "^(all|[0-9a-fA-F]{64}|[0-9a-fA-F]{66}|[0-9]+x[0-9]+x[0-9]+|[0-9]+)$"})
);

/// `getroute`'s destination: a node id (a keysend) or a BOLT11 invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A node id.
    Node(NodeId),
    /// Anything else is taken for an invoice, for the node to decode.
    Invoice(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Node(node_id) => node_id.fmt(f),
            Destination::Invoice(bolt11) => f.write_str(bolt11),
        }
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() == 66 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            text.parse().map(Destination::Node)
        } else {
            Ok(Destination::Invoice(text.to_owned()))
        }
    }
}

string_param!(Destination, "Destination", json_schema!({"type": "string"}));

/// `connect`'s peer: a node id, optionally with `@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUri {
    /// The node id.
    pub node_id: NodeId,
    /// `host:port` after the `@`, if given.
    pub address: Option<String>,
}

impl fmt::Display for PeerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Some(address) => write!(f, "{}@{address}", self.node_id),
            None => self.node_id.fmt(f),
        }
    }
}

impl std::str::FromStr for PeerUri {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (id, address) = match text.split_once('@') {
            Some((id, address)) => (id, Some(address.to_owned())),
            None => (text, None),
        };
        let node_id = id.parse().map_err(|_| {
            format!("must be a node id (66 hex characters) or node_id@host:port, not {text:?}")
        })?;
        Ok(PeerUri { node_id, address })
    }
}

string_param!(
    PeerUri,
    "PeerUri",
    json_schema!({"type": "string", "pattern": "^[0-9a-fA-F]{66}(@.+)?$"})
);

#[cfg(test)]
mod tests {
    use super::*;

    fn de<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_are_numbers_or_digit_strings_up_to_their_limit() {
        assert_eq!(de::<Uint<100>>("12"), Ok(Uint(12)));
        assert_eq!(de::<Uint<100>>(r#""12""#), Ok(Uint(12)));
        assert!(de::<Uint<100>>("-5").is_err_and(|e| e.contains("non-negative integer")));
        assert!(de::<Uint<100>>("1.5").is_err());
        assert!(de::<Uint<100>>(r#""+5""#).is_err());
        assert!(de::<Uint<100>>("101").is_err_and(|e| e.contains("at most 100")));
        assert!(de::<Msat>(r#""99999999999999999999999""#).is_err_and(|e| e.contains("too large")));
    }

    #[test]
    fn amounts_take_their_word() {
        assert_eq!(de::<SatOrAll>(r#""all""#), Ok(SatOrAll::All));
        assert_eq!(de::<SatOrAll>("5"), Ok(SatOrAll::Sat(5)));
        assert!(de::<SatOrAll>(r#""any""#).is_err_and(|e| e.contains("or \"all\"")));
        assert_eq!(de::<MsatOrAny>(r#""any""#), Ok(MsatOrAny::Any));
        assert!(de::<MsatOrAny>("true").is_err());
    }

    #[test]
    fn ids_are_parsed_from_hex() {
        let node = format!("\"02{}\"", "ab".repeat(32));
        assert!(de::<NodeId>(&node).is_ok());
        assert!(de::<NodeId>(r#""02aaaa""#).is_err_and(|e| e.contains("66 hex")));
        assert!(de::<Hash32>(&format!("\"{}\"", "Ff".repeat(32))).is_ok());
        assert!(de::<Hash32>(r#""zz""#).is_err());
        assert_eq!(
            "103x1x0".parse::<ShortChannelId>().map(|s| s.to_string()),
            Ok("103x1x0".to_owned())
        );
        assert!(matches!(
            "103x1x0".parse::<ChannelRef>(),
            Ok(ChannelRef::ShortChannelId(_))
        ));
        assert!(matches!(
            "00".repeat(32).parse::<ChannelRef>(),
            Ok(ChannelRef::ChannelId(_))
        ));
        assert!("hello".parse::<ChannelRef>().is_err());
        let uri: Result<PeerUri, _> = format!("02{}@127.0.0.1:9735", "ab".repeat(32)).parse();
        assert_eq!(
            uri.map(|u| u.address),
            Ok(Some("127.0.0.1:9735".to_owned()))
        );
    }
}
