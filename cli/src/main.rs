//! `xln-cli`: the command-line client of the xlnd Lightning daemon. It learns the daemon's methods
//! and their parameters from the daemon's `help` method, turns the command line into a JSON-RPC
//! call with named params, prints the result as JSON and exits 0, 1 (the call was refused) or 2
//! (no usable conversation with the daemon).

// Doc comments of the command-line types are clap's --help text for terminals, where
// `<datadir>` is a placeholder, not an HTML tag.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod connection;
mod daemon_rpc;
mod help_table;
mod output;
mod params;

#[cfg(test)]
mod fake_daemon;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::connection::ConnectionSettings;
use crate::daemon_rpc::{DaemonRpc, Failure};
use crate::params::ParamsError;

const AFTER_HELP: &str = "\
Examples:
  xln-cli --datadir ~/.xln/bitcoin-regtest getinfo
  xln-cli help                                     # the daemon's methods, one per line
  xln-cli help pay                                 # one method: its parameters and result
  xln-cli invoice 50000 coffee                     # 50000 msat, description \"coffee\"
  xln-cli pay lnbcrt...
  xln-cli invoice amount_msat=any description=tip  # parameters by name
  xln-cli pay lnbcrt... max_fee_msat=2000          # positional first, then by name
  xln-cli withdraw bcrt1q... all
  xln-cli subscribe invoices 0                     # every invoice event, then new ones, one JSON line each
  xln-cli --rpc-url http://127.0.0.1:9835 --rpc-cookie /srv/xln/rpc.cookie listpeers

Exit status: 0 the result is printed; 1 the daemon returned an error, or the parameters do not fit
the method; 2 the daemon could not be found, reached or authenticated to, or the command line is
wrong.";

/// Call a method of the xlnd Lightning daemon and print its result as JSON.
///
/// The methods and their parameters come from the running daemon itself: `xln-cli help` lists
/// them and `xln-cli help <method>` explains one. Parameters go by position, in the order that
/// help shows, or as name=value (e.g. amount_msat=any); give positional ones first. A word is
/// name=value only when name is one of the method's parameters, so descriptions may contain '='.
/// Options go before the method.
///
/// xln-cli finds the daemon through the files xlnd writes into its datadir when it starts:
/// rpc.url (where it listens) and rpc.cookie (the credentials). By default that is
/// ~/.xln/<chain>-<network>, the same default xlnd uses.
#[derive(Debug, Parser)]
#[command(name = "xln-cli", version, verbatim_doc_comment, after_help = AFTER_HELP)]
struct Cli {
    /// xlnd's data directory, holding rpc.url and rpc.cookie [default: ~/.xln/<chain>-<network>]
    #[arg(long, env = "XLN_DATADIR", value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Chain of the daemon (bitcoin or qtum); only picks the default datadir
    #[arg(long, env = "XLN_CHAIN", default_value = "bitcoin")]
    chain: String,
    /// Network of the daemon (mainnet, testnet, signet or regtest); only picks the default datadir
    #[arg(long, env = "XLN_NETWORK", default_value = "regtest")]
    network: String,
    /// JSON-RPC URL of xlnd, instead of the one in <datadir>/rpc.url (host:port is enough)
    #[arg(long, env = "XLN_RPC_URL", value_name = "URL")]
    rpc_url: Option<String>,
    /// Cookie file to authenticate with, instead of <datadir>/rpc.cookie
    #[arg(long, env = "XLN_RPC_COOKIE", value_name = "FILE")]
    rpc_cookie: Option<PathBuf>,
    /// Fixed RPC user xlnd was started with (with --rpc-password), instead of the cookie
    #[arg(long, env = "XLN_RPC_USER", value_name = "USER")]
    rpc_user: Option<String>,
    /// Password of --rpc-user
    #[arg(
        long,
        env = "XLN_RPC_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    rpc_password: Option<String>,
    /// The method to call, e.g. getinfo, pay, invoice; `help` lists them all; `subscribe <stream>
    /// [since_index]` prints a stream of events (invoices, payments, htlcs, channels, peers, blocks,
    /// intercepted_htlcs)
    #[arg(value_name = "METHOD")]
    method: String,
    /// The method's parameters: by position, or as name=value
    #[arg(
        value_name = "PARAMS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    params: Vec<String>,
}

impl Cli {
    /// Parses the command line; exits 2 on a usage error, 0 after --help or --version.
    fn parse_or_exit() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.choose_between_cookie_and_fixed_user(&matches)
            .unwrap_or_else(|e| e.exit());
        cli
    }

    /// When both a cookie file and a fixed user are set, keeps the one given as a flag and drops
    /// the one from the environment: XLN_RPC_USER/XLN_RPC_PASSWORD are xlnd's settings too, so
    /// they may be exported for the daemon. Both from the same place is a usage error.
    fn choose_between_cookie_and_fixed_user(
        &mut self,
        matches: &ArgMatches,
    ) -> Result<(), clap::Error> {
        if self.rpc_cookie.is_none() || (self.rpc_user.is_none() && self.rpc_password.is_none()) {
            return Ok(());
        }
        let given_as_flag = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let cookie_as_flag = given_as_flag("rpc_cookie");
        let fixed_user_as_flag = given_as_flag("rpc_user") || given_as_flag("rpc_password");
        match (cookie_as_flag, fixed_user_as_flag) {
            (true, false) => {
                self.rpc_user = None;
                self.rpc_password = None;
            }
            (false, true) => self.rpc_cookie = None,
            _ => {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    "--rpc-cookie (XLN_RPC_COOKIE) and --rpc-user/--rpc-password \
                     (XLN_RPC_USER/XLN_RPC_PASSWORD) are alternatives; give one of them",
                ));
            }
        }
        Ok(())
    }

    fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            datadir: self.datadir.clone(),
            chain: self.chain.clone(),
            network: self.network.clone(),
            rpc_url: self.rpc_url.clone(),
            rpc_cookie: self.rpc_cookie.clone(),
            rpc_user: self.rpc_user.clone(),
            rpc_password: self.rpc_password.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli, home.as_deref(), &mut std::io::stdout().lock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Does what the command line asks and writes the answer to `stdout`.
async fn run(cli: &Cli, home: Option<&Path>, stdout: &mut impl Write) -> Result<(), Failure> {
    let endpoint = connection::resolve_endpoint(&cli.connection_settings(), home)
        .map_err(Failure::Connection)?;
    let rpc = DaemonRpc::new(endpoint)?;
    if cli.method == "subscribe" {
        return subscribe(&rpc, &cli.params, stdout).await;
    }
    let text = if cli.method == "help" {
        help_text(&rpc, &cli.params).await?
    } else {
        let method = rpc.method_help(&cli.method).await?;
        let named_params =
            params::named_params(&method, &cli.params).map_err(|error| Failure::Params {
                method: method.name.clone(),
                error,
            })?;
        let result = rpc.call(&method.name, named_params).await?;
        output::result_text(&result)
    };
    writeln!(stdout, "{}", text.trim_end()).map_err(Failure::Output)
}

/// The event streams `xln-cli subscribe` knows: those of the contract's subscriptions.
fn streams() -> Vec<&'static str> {
    rpc_contract::events::SUBSCRIPTIONS
        .iter()
        .filter_map(|s| s.subscribe.strip_prefix("subscribe_"))
        .collect()
}

/// `xln-cli subscribe <stream> [since_index]`: prints each event as one line of JSON, as it
/// comes, until the daemon stops or the user interrupts.
async fn subscribe(
    rpc: &DaemonRpc,
    words: &[String],
    stdout: &mut impl Write,
) -> Result<(), Failure> {
    let usage = || {
        format!(
            "usage: xln-cli subscribe <stream> [since_index]; streams: {}",
            streams().join(", ")
        )
    };
    let params_failure = |message: String| Failure::Params {
        method: "subscribe".to_owned(),
        error: ParamsError::Invalid(message),
    };
    let (stream, since) = match words {
        [stream] => (stream, None),
        [stream, since] => (stream, Some(since)),
        _ => return Err(params_failure(usage())),
    };
    let stream = stream.strip_prefix("stream=").unwrap_or(stream);
    if !streams().contains(&stream) {
        return Err(params_failure(format!(
            "unknown stream {stream:?}; {}",
            usage()
        )));
    }
    let mut params = serde_json::Map::new();
    if let Some(since) = since {
        let since = since.strip_prefix("since_index=").unwrap_or(since);
        let index: u64 = since.parse().map_err(|_| {
            params_failure(format!(
                "since_index must be a whole number (the index of the last event handled), not {since:?}"
            ))
        })?;
        params.insert("since_index".to_owned(), index.into());
    }
    rpc.subscribe(stream, params, |event| {
        writeln!(stdout, "{event}")
            .and_then(|()| stdout.flush())
            .map_err(Failure::Output)
    })
    .await
}

/// `xln-cli help` and `xln-cli help <method>`, from the daemon's table.
async fn help_text(rpc: &DaemonRpc, words: &[String]) -> Result<String, Failure> {
    let needs_daemon = |failure: Failure| match failure {
        Failure::Connection(error) => Failure::Connection(error.context(
            "xln-cli help shows the methods the running xlnd serves, so it needs the daemon",
        )),
        other => other,
    };
    match words {
        [] => Ok(output::method_list_text(
            &rpc.help_table().await.map_err(needs_daemon)?,
        )),
        [method] => {
            let method = method.strip_prefix("method=").unwrap_or(method);
            Ok(output::method_help_text(
                &rpc.method_help(method).await.map_err(needs_daemon)?,
            ))
        }
        [_, extra, ..] => Err(Failure::Params {
            method: "help".to_owned(),
            error: ParamsError::TooMany {
                method: "help".to_owned(),
                max: 1,
                known: "method".to_owned(),
                word: extra.clone(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::fake_daemon::{FakeDaemon, PASSWORD, USER};

    fn cli(args: &[&str]) -> Cli {
        let mut argv = vec!["xln-cli"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("test command line does not parse: {e}"))
    }

    fn cli_for(daemon: &FakeDaemon, method_and_params: &[&str]) -> Cli {
        let mut args = vec![
            "--rpc-url",
            &daemon.url,
            "--rpc-user",
            USER,
            "--rpc-password",
            PASSWORD,
        ];
        args.extend_from_slice(method_and_params);
        cli(&args)
    }

    /// Runs `cli` and returns (exit code, stdout, stderr) as the binary would produce them.
    async fn run_to_end(cli: &Cli) -> (u8, String, String) {
        let mut stdout = Vec::new();
        let outcome = run(cli, None, &mut stdout).await;
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        match outcome {
            Ok(()) => (0, stdout, String::new()),
            Err(failure) => (failure.exit_code(), stdout, failure.message()),
        }
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn words_after_the_method_are_params_even_with_hyphens() {
        let parsed = cli(&["invoice", "-5", "--not-a-flag", "a=b"]);
        assert_eq!(parsed.method, "invoice");
        assert_eq!(parsed.params, ["-5", "--not-a-flag", "a=b"]);
    }

    #[test]
    fn cookie_file_and_fixed_user_both_as_flags_are_a_usage_error() -> Result<(), clap::Error> {
        let argv = [
            "xln-cli",
            "--rpc-cookie",
            "/c",
            "--rpc-user",
            "u",
            "--rpc-password",
            "p",
            "getinfo",
        ];
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut parsed = Cli::from_arg_matches(&matches)?;
        let error = parsed.choose_between_cookie_and_fixed_user(&matches).err();
        assert_eq!(error.map(|e| e.exit_code()), Some(2));
        Ok(())
    }

    #[test]
    fn cookie_file_alone_is_kept() -> Result<(), clap::Error> {
        let matches =
            Cli::command().try_get_matches_from(["xln-cli", "--rpc-cookie", "/c", "getinfo"])?;
        let mut parsed = Cli::from_arg_matches(&matches)?;
        parsed.choose_between_cookie_and_fixed_user(&matches)?;
        assert_eq!(parsed.rpc_cookie.as_deref(), Some(Path::new("/c")));
        Ok(())
    }

    #[test]
    fn missing_method_is_a_usage_error_with_exit_code_2() {
        let error = Cli::try_parse_from(["xln-cli"]).err();
        assert_eq!(error.map(|e| e.exit_code()), Some(2));
    }

    #[tokio::test]
    async fn call_sends_params_by_name_and_prints_the_result_as_pretty_json() -> std::io::Result<()>
    {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, stderr) =
            run_to_end(&cli_for(&daemon, &["invoice", "50000", "coffee"])).await;
        assert_eq!((code, stderr.as_str()), (0, ""));
        let expected = json!({"received_params": {"amount_msat": 50000, "description": "coffee"}});
        assert_eq!(stdout, format!("{}\n", output::result_text(&expected)));
        let requests = daemon.requests();
        assert_eq!(
            requests.first().map(|r| r["method"].clone()),
            Some(json!("help"))
        );
        assert_eq!(
            requests.first().map(|r| r["params"].clone()),
            Some(json!({"method": "invoice"}))
        );
        Ok(())
    }

    #[tokio::test]
    async fn key_value_params_and_literal_any_reach_the_daemon() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, _) = run_to_end(&cli_for(
            &daemon,
            &["invoice", "amount_msat=any", "description=tip=5%"],
        ))
        .await;
        assert_eq!(code, 0);
        let printed: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        assert_eq!(
            printed,
            json!({"received_params": {"amount_msat": "any", "description": "tip=5%"}})
        );
        Ok(())
    }

    #[tokio::test]
    async fn method_without_params_is_sent_an_empty_object() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, _) = run_to_end(&cli_for(&daemon, &["getinfo"])).await;
        assert_eq!(code, 0);
        assert!(stdout.contains("\"node_id\": \"02aa\""), "{stdout}");
        assert_eq!(
            daemon.requests().last().map(|r| r["params"].clone()),
            Some(json!({}))
        );
        Ok(())
    }

    #[tokio::test]
    async fn daemon_error_exits_1_with_code_message_and_data() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, stderr) = run_to_end(&cli_for(&daemon, &["pay", "lnbcrt1xyz"])).await;
        assert_eq!((code, stdout.as_str()), (1, ""));
        assert_eq!(
            stderr,
            "error -32010: no route to the payee\n{\n  \"attempts\": 2\n}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn params_that_do_not_fit_exit_1_before_the_call_is_sent() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, _, stderr) = run_to_end(&cli_for(&daemon, &["invoice", "5000"])).await;
        assert_eq!(code, 1);
        assert!(
            stderr.starts_with("error: `invoice` needs parameter `description`"),
            "{stderr}"
        );
        let (code, _, stderr) = run_to_end(&cli_for(&daemon, &["getinfo", "verbose"])).await;
        assert_eq!(code, 1);
        assert!(stderr.contains("takes at most 0 parameter(s)"), "{stderr}");
        let methods_sent: Vec<Value> = daemon
            .requests()
            .iter()
            .map(|r| r["method"].clone())
            .collect();
        assert_eq!(methods_sent, [json!("help"), json!("help")]);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_method_exits_1_with_the_daemons_error_and_a_hint() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, _, stderr) = run_to_end(&cli_for(&daemon, &["payy"])).await;
        assert_eq!(code, 1);
        assert_eq!(
            stderr,
            "error -32601: unknown method payy\n`xln-cli help` lists the methods of xlnd"
        );
        Ok(())
    }

    #[tokio::test]
    async fn wrong_credentials_exit_2_saying_authentication_failed() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let datadir = tempfile::tempdir()?;
        std::fs::write(datadir.path().join("rpc.url"), format!("{}\n", daemon.url))?;
        std::fs::write(datadir.path().join("rpc.cookie"), "__cookie__:stale\n")?;
        let datadir_arg = datadir.path().display().to_string();
        let (code, _, stderr) = run_to_end(&cli(&["--datadir", &datadir_arg, "getinfo"])).await;
        assert_eq!(code, 2);
        assert!(
            stderr.starts_with("error: authentication failed: the cookie is stale or wrong;"),
            "{stderr}"
        );
        assert!(daemon.requests().is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn datadir_files_lead_to_the_daemon() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let datadir = tempfile::tempdir()?;
        std::fs::write(datadir.path().join("rpc.url"), format!("{}\n", daemon.url))?;
        std::fs::write(
            datadir.path().join("rpc.cookie"),
            format!("{USER}:{PASSWORD}\n"),
        )?;
        let datadir_arg = datadir.path().display().to_string();
        let (code, stdout, _) = run_to_end(&cli(&["--datadir", &datadir_arg, "getinfo"])).await;
        assert_eq!(code, 0);
        assert!(stdout.contains("\"alias\": \"fake\""), "{stdout}");
        Ok(())
    }

    #[tokio::test]
    async fn missing_datadir_files_exit_2_saying_xlnd_does_not_seem_to_run() -> std::io::Result<()>
    {
        let datadir = tempfile::tempdir()?;
        let datadir_arg = datadir.path().display().to_string();
        let (code, _, stderr) = run_to_end(&cli(&["--datadir", &datadir_arg, "getinfo"])).await;
        assert_eq!(code, 2);
        assert!(
            stderr.contains("xlnd does not seem to run with datadir"),
            "{stderr}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_daemon_exits_2_saying_so() -> std::io::Result<()> {
        let unused_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{unused_port}");
        let args = [
            "--rpc-url",
            url.as_str(),
            "--rpc-user",
            USER,
            "--rpc-password",
            PASSWORD,
        ];
        let (code, _, stderr) = run_to_end(&cli(&[&args[..], &["getinfo"]].concat())).await;
        assert_eq!(code, 2);
        assert!(
            stderr.starts_with(&format!("error: cannot reach xlnd at {url}")),
            "{stderr}"
        );
        let (code, _, stderr) = run_to_end(&cli(&[&args[..], &["help"]].concat())).await;
        assert_eq!(code, 2);
        assert!(
            stderr.contains(
                "xln-cli help shows the methods the running xlnd serves, so it needs the daemon"
            ),
            "{stderr}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn help_lists_the_daemons_methods_one_per_line() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, _) = run_to_end(&cli_for(&daemon, &["help"])).await;
        assert_eq!(code, 0);
        let lines: Vec<&str> = stdout.lines().collect();
        let widest = "invoice amount_msat description [expiry_secs]";
        assert_eq!(
            lines.first().copied(),
            Some(format!("{:<45}  Show this node.", "getinfo").as_str())
        );
        assert_eq!(
            lines.get(1).copied(),
            Some(format!("{widest}  Create an invoice.").as_str())
        );
        assert_eq!(
            lines.get(2).copied(),
            Some(format!("{:<45}  Pay a BOLT11 invoice.", "pay bolt11 [amount_msat]").as_str())
        );
        assert_eq!(
            daemon.requests().first().map(|r| r["params"].clone()),
            Some(json!({}))
        );
        Ok(())
    }

    #[tokio::test]
    async fn help_of_a_method_explains_its_params_and_result() -> std::io::Result<()> {
        let daemon = FakeDaemon::start().await?;
        let (code, stdout, _) = run_to_end(&cli_for(&daemon, &["help", "invoice"])).await;
        assert_eq!(code, 0);
        assert!(
            stdout
                .starts_with("invoice amount_msat description [expiry_secs]\n\nCreate an invoice."),
            "{stdout}"
        );
        assert!(
            stdout.contains("  amount_msat  integer|any, required  Amount, or any\n"),
            "{stdout}"
        );
        assert!(
            stdout.contains("Result:\n  bolt11, payment_hash\n"),
            "{stdout}"
        );
        let (code, _, stderr) = run_to_end(&cli_for(&daemon, &["help", "invoice", "pay"])).await;
        assert_eq!(code, 1);
        assert!(
            stderr.contains("`help` takes at most 1 parameter(s)"),
            "{stderr}"
        );
        Ok(())
    }
}
