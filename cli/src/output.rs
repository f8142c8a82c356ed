//! What xln-cli shows: results as pretty JSON, daemon errors as `error <code>: <message>`, the
//! method list and one method's explanation from the daemon's help table, and the progress line
//! on a terminal while a long call (a payment, a channel funding, waiting for an invoice) waits.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::help_table::{HelpTable, MethodHelp};

/// Signatures longer than this do not push the descriptions of the method list further right.
const MAX_SIGNATURE_COLUMN: usize = 56;

/// A result as printed on stdout: pretty JSON.
pub fn result_text(result: &Value) -> String {
    serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string())
}

/// A JSON-RPC error object as printed on stderr: `error <code>: <message>`, then the data if any.
pub fn rpc_error_text(code: i32, message: &str, data: Option<&Value>) -> String {
    let mut text = format!("error {code}: {message}");
    match data {
        None | Some(Value::Null) => {}
        Some(Value::String(data)) => text.push_str(&format!("\n{data}")),
        Some(data) => text.push_str(&format!("\n{}", result_text(data))),
    }
    text
}

/// How a method is called: its name, then its parameters, optional ones in brackets
/// (`pay bolt11 [amount_msat] [max_fee_msat] [timeout_secs]`).
pub fn signature(method: &MethodHelp) -> String {
    let mut signature = method.name.clone();
    for param in &method.params {
        if param.required {
            signature.push_str(&format!(" {}", param.name));
        } else {
            signature.push_str(&format!(" [{}]", param.name));
        }
    }
    signature
}

/// The answer to `xln-cli help`: one line per method, its signature and the first line of its
/// description.
pub fn method_list_text(table: &HelpTable) -> String {
    let signatures: Vec<String> = table.methods.iter().map(signature).collect();
    let column = signatures
        .iter()
        .map(String::len)
        .filter(|len| *len <= MAX_SIGNATURE_COLUMN)
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (method, signature) in table.methods.iter().zip(&signatures) {
        let summary = method.description.lines().next().unwrap_or_default();
        let line = format!("{signature:<column$}  {summary}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str(
        "\n`xln-cli help <method>` explains a method. Parameters go by position, or as name=value \
         (e.g. `xln-cli invoice amount_msat=any description=tip`).\n",
    );
    text
}

/// The answer to `xln-cli help <method>`: signature, description, each parameter and the result.
pub fn method_help_text(method: &MethodHelp) -> String {
    let mut text = format!("{}\n", signature(method));
    if !method.description.is_empty() {
        text.push_str(&format!("\n{}\n", method.description.trim_end()));
    }
    if method.params.is_empty() {
        text.push_str("\nParameters: none\n");
    } else {
        text.push_str("\nParameters (by position in this order, or as name=value):\n");
        let name_column = method
            .params
            .iter()
            .map(|param| param.name.len())
            .max()
            .unwrap_or(0);
        let kinds: Vec<String> = method
            .params
            .iter()
            .map(|param| {
                format!(
                    "{}, {}",
                    param.kind,
                    if param.required {
                        "required"
                    } else {
                        "optional"
                    }
                )
            })
            .collect();
        let kind_column = kinds.iter().map(String::len).max().unwrap_or(0);
        for (param, kind) in method.params.iter().zip(&kinds) {
            let line = format!(
                "  {:<name_column$}  {kind:<kind_column$}  {}",
                param.name, param.description
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    if !method.result.is_empty() {
        text.push_str("\nResult:\n");
        for line in method.result.lines() {
            text.push_str(format!("  {line}").trim_end());
            text.push('\n');
        }
    }
    text
}

/// A one-line `waiting for <method>... 12s` status, rewritten in place with `\r`.
pub struct ProgressLine<W: Write> {
    out: W,
    label: String,
    shown_len: usize,
}

impl<W: Write> ProgressLine<W> {
    /// A progress line for waiting on `method`, written to `out` (stderr on a terminal).
    pub fn new(out: W, method: &str) -> Self {
        ProgressLine {
            out,
            label: format!("waiting for {method}..."),
            shown_len: 0,
        }
    }

    /// Shows the time waited so far in place of the previous status.
    pub fn show(&mut self, waited: Duration) {
        let line = format!("{} {}", self.label, elapsed_text(waited));
        let padding = self.shown_len.saturating_sub(line.len());
        // Progress is a courtesy: a stderr that cannot be written must not fail the call.
        let _ = write!(self.out, "\r{line}{:padding$}", "");
        let _ = self.out.flush();
        self.shown_len = line.len();
    }

    /// Removes the status so that what follows starts on a clean line.
    pub fn clear(&mut self) {
        if self.shown_len > 0 {
            let _ = write!(self.out, "\r{:width$}\r", "", width = self.shown_len);
            let _ = self.out.flush();
            self.shown_len = 0;
        }
    }
}

/// `12s`, `2m05s`, `1h02m03s`.
fn elapsed_text(waited: Duration) -> String {
    let secs = waited.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// Waits for `call`; when `show_progress`, meanwhile shows a progress line for `method` on stderr,
/// from the first second on (quick answers show nothing), and clears it at the end.
pub async fn wait_with_progress<F: Future>(
    method: &str,
    call: F,
    show_progress: bool,
) -> F::Output {
    if !show_progress {
        return call.await;
    }
    let started = tokio::time::Instant::now();
    let mut ticks =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut progress = ProgressLine::new(std::io::stderr(), method);
    tokio::pin!(call);
    loop {
        tokio::select! {
            output = &mut call => {
                progress.clear();
                return output;
            }
            _ = ticks.tick() => progress.show(started.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::help_table::{ParamHelp, ParamKind};

    fn pay() -> MethodHelp {
        let param = |name: &str, type_name: &str, required: bool, description: &str| ParamHelp {
            name: name.to_owned(),
            kind: ParamKind::from(type_name.to_owned()),
            required,
            description: description.to_owned(),
        };
        MethodHelp {
            name: "pay".to_owned(),
            description: "Pay a BOLT11 invoice and wait for the outcome.\nRetries other routes."
                .to_owned(),
            params: vec![
                param("bolt11", "string", true, "The invoice"),
                param(
                    "amount_msat",
                    "integer",
                    false,
                    "Amount for an invoice without one",
                ),
                param("max_fee_msat", "integer", false, "Fee limit"),
                param("timeout_secs", "integer", false, "How long to try"),
            ],
            result: "payment_hash, payment_preimage,\nfee_msat".to_owned(),
        }
    }

    fn getinfo() -> MethodHelp {
        MethodHelp {
            name: "getinfo".to_owned(),
            description: "Show the node.".to_owned(),
            params: Vec::new(),
            result: "node_id, alias".to_owned(),
        }
    }

    #[test]
    fn signature_brackets_optional_params() {
        assert_eq!(
            signature(&pay()),
            "pay bolt11 [amount_msat] [max_fee_msat] [timeout_secs]"
        );
        assert_eq!(signature(&getinfo()), "getinfo");
    }

    #[test]
    fn method_list_has_one_aligned_line_per_method_with_the_first_description_line() {
        let text = method_list_text(&HelpTable {
            methods: vec![getinfo(), pay()],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("getinfo                                                 Show the node.")
        );
        assert_eq!(
            lines.get(1).copied(),
            Some("pay bolt11 [amount_msat] [max_fee_msat] [timeout_secs]  Pay a BOLT11 invoice and wait for the outcome.")
        );
        assert!(!text.contains("Retries other routes"));
        assert!(text.contains("xln-cli help <method>"));
    }

    #[test]
    fn method_help_explains_each_param_with_type_and_the_result() {
        let text = method_help_text(&pay());
        assert!(
            text.starts_with(
                "pay bolt11 [amount_msat] [max_fee_msat] [timeout_secs]\n\nPay a BOLT11"
            ),
            "{text}"
        );
        assert!(text.contains("Retries other routes."), "{text}");
        assert!(
            text.contains("  bolt11        string, required   The invoice\n"),
            "{text}"
        );
        assert!(
            text.contains("  amount_msat   integer, optional  Amount for an invoice without one\n"),
            "{text}"
        );
        assert!(
            text.contains("\nResult:\n  payment_hash, payment_preimage,\n  fee_msat\n"),
            "{text}"
        );
    }

    #[test]
    fn method_help_of_a_method_without_params_says_none() {
        let text = method_help_text(&getinfo());
        assert!(text.contains("Parameters: none"), "{text}");
    }

    #[test]
    fn rpc_error_prints_code_message_and_data() {
        assert_eq!(
            rpc_error_text(-32602, "invalid amount_msat", None),
            "error -32602: invalid amount_msat"
        );
        assert_eq!(
            rpc_error_text(-1, "no route", Some(&json!("tried 3 paths"))),
            "error -1: no route\ntried 3 paths"
        );
        assert_eq!(
            rpc_error_text(-1, "no route", Some(&json!({"attempts": 3}))),
            "error -1: no route\n{\n  \"attempts\": 3\n}"
        );
        assert_eq!(rpc_error_text(-1, "x", Some(&Value::Null)), "error -1: x");
    }

    #[test]
    fn result_is_pretty_json() {
        assert_eq!(
            result_text(&json!({"a": [1]})),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn progress_line_is_rewritten_in_place_and_cleared() {
        let mut written = Vec::new();
        {
            let mut progress = ProgressLine::new(&mut written, "pay");
            progress.show(Duration::from_secs(9));
            progress.show(Duration::from_secs(75));
            progress.clear();
        }
        let expected =
            "\rwaiting for pay... 9s\rwaiting for pay... 1m15s\r                        \r";
        assert_eq!(String::from_utf8_lossy(&written), expected);
    }

    #[test]
    fn progress_line_pads_over_a_longer_previous_line() {
        let mut written = Vec::new();
        {
            let mut progress = ProgressLine::new(&mut written, "pay");
            progress.show(Duration::from_secs(3725));
            progress.show(Duration::from_secs(1));
        }
        assert_eq!(
            String::from_utf8_lossy(&written),
            "\rwaiting for pay... 1h02m05s\rwaiting for pay... 1s      "
        );
    }

    #[test]
    fn nothing_is_shown_when_not_asked() {
        let output = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map(|runtime| runtime.block_on(wait_with_progress("pay", async { 7 }, false)));
        assert_eq!(output.ok(), Some(7));
    }
}
