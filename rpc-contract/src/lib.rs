//! The contract of xlnd's JSON-RPC API, as Rust types: for each method a marker type
//! implementing [`Method`] (its name and description), a params struct and a result struct.
//! xlnd deserializes params into the params struct and serializes the result struct; xln-cli
//! compiles the same types. The `help` table, the OpenRPC document of `rpc.discover` and the
//! method reference in `docs/rpc.md` are all generated from them ([`describe`]).
//!
//! This crate depends on serde, serde_json and schemars only, so that the CLI (and any Rust
//! client) can use it without the node.

pub mod channels;
pub mod describe;
pub mod events;
pub mod graph;
pub mod intercepts;
pub mod invoices;
pub mod node;
pub mod onchain;
pub mod params;
pub mod payments;
pub mod peers;
pub mod types;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use describe::{method_docs, MethodDoc, ParamDoc};
pub use params::ParamError;

/// One RPC method of the contract.
pub trait Method {
    /// The JSON-RPC method name.
    const NAME: &'static str;
    /// What it does: the first line is the summary that `xln-cli help` lists, the rest (markdown)
    /// explains it and names its errors.
    const DESCRIPTION: &'static str;
    /// Its params, in positional order of their fields.
    type Params: DeserializeOwned + Serialize + JsonSchema + Send + 'static;
    /// Its result.
    type Result: DeserializeOwned + Serialize + JsonSchema + Clone + Send + 'static;
}

/// The params of a method that takes none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The result of a method that answers with an empty object: it did what was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// Declares a method's marker type and its [`Method`] impl.
macro_rules! method {
    ($(#[$doc:meta])* $marker:ident = $name:literal, $params:ty => $result:ty, $description:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $marker;

        impl $crate::Method for $marker {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $description;
            type Params = $params;
            type Result = $result;
        }
    };
}
pub(crate) use method;

/// Calls `$visit::<M>(args…)` for every method of the contract, in the order `help` and the docs list
/// them. xlnd registers each of them; a method missing here is not served.
#[macro_export]
macro_rules! for_each_method {
    ($visit:ident $(, $arg:expr)*) => {{
        use $crate::{channels::*, events::*, graph::*, intercepts::*, invoices::*, node::*, onchain::*, payments::*, peers::*};
        vec![
            $visit::<GetInfo>($($arg),*),
            $visit::<NewAddr>($($arg),*),
            $visit::<ListFunds>($($arg),*),
            $visit::<Withdraw>($($arg),*),
            $visit::<ListBroadcasts>($($arg),*),
            $visit::<Connect>($($arg),*),
            $visit::<Disconnect>($($arg),*),
            $visit::<ListPeers>($($arg),*),
            $visit::<FundChannel>($($arg),*),
            $visit::<ListChannels>($($arg),*),
            $visit::<SetChannel>($($arg),*),
            $visit::<Close>($($arg),*),
            $visit::<InvoiceMethod>($($arg),*),
            $visit::<SettleInvoice>($($arg),*),
            $visit::<CancelInvoice>($($arg),*),
            $visit::<ListInvoices>($($arg),*),
            $visit::<WaitInvoice>($($arg),*),
            $visit::<Decode>($($arg),*),
            $visit::<WaitAnyInvoice>($($arg),*),
            $visit::<ListEvents>($($arg),*),
            $visit::<Pay>($($arg),*),
            $visit::<Keysend>($($arg),*),
            $visit::<ListPayments>($($arg),*),
            $visit::<GetRoute>($($arg),*),
            $visit::<ListForwards>($($arg),*),
            $visit::<InterceptScid>($($arg),*),
            $visit::<ListInterceptedHtlcs>($($arg),*),
            $visit::<ResolveHtlc>($($arg),*),
            $visit::<ResolveHtlcAlias>($($arg),*),
            $visit::<ListNodes>($($arg),*),
            $visit::<ListGraphChannels>($($arg),*),
            $visit::<SignMessage>($($arg),*),
            $visit::<CheckMessage>($($arg),*),
            $visit::<Help>($($arg),*),
            $visit::<Discover>($($arg),*),
            $visit::<Stop>($($arg),*),
        ]
    }};
}
