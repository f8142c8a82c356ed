//! xlnd's configuration: every setting is a flag, an `XLN_<NAME>` environment variable and a key
//! of `<datadir>/xln.toml`, with precedence flags > environment > file > defaults. Flag names are
//! the TOML keys with `-` for `_` (as ldk-server does).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ln_core::node::HtlcBatching;
use ln_core::{Chain, ChainParams, Network};
use serde::Deserialize;

/// The xln Lightning daemon: one process is one Lightning node on one chain.
///
/// xlnd follows a bitcoind (or qtumd) over its RPC, keeps its channels, wallet and history in
/// `--datadir`, talks Lightning to peers on `--listen`, and serves a JSON-RPC API on
/// `--rpc-listen` for `xln-cli` and programs. Every option can also be set as an environment
/// variable `XLN_<OPTION>` (e.g. `XLN_NODE_RPC_URL`) or as a key in `<datadir>/xln.toml`
/// (e.g. `node_rpc_url = "http://127.0.0.1:18443"`); flags win over the environment, which wins
/// over the file.
///
/// At start xlnd waits for a chain node that is still starting or, on mainnet, testnet and
/// signet, still syncing; it gives up on one it cannot reach for a minute.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "xlnd", version, after_help = EXAMPLES, args_override_self = true)]
pub struct Flags {
    /// Data directory: seed, channel state, wallet, logs, RPC cookie [default: ~/.xln/<chain>-<network>]
    #[arg(long, env = "XLN_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Chain to run on: bitcoin or qtum [default: bitcoin]
    #[arg(long, env = "XLN_CHAIN")]
    pub chain: Option<String>,
    /// Network: mainnet, testnet, signet or regtest [default: regtest]
    #[arg(long, env = "XLN_NETWORK")]
    pub network: Option<String>,
    /// RPC URL of the chain node (bitcoind/qtumd) [default: http://127.0.0.1:<the network's RPC port>]
    #[arg(long, env = "XLN_NODE_RPC_URL")]
    pub node_rpc_url: Option<String>,
    /// RPC user of the chain node (with --node-rpc-password; otherwise the cookie is used)
    #[arg(long, env = "XLN_NODE_RPC_USER")]
    pub node_rpc_user: Option<String>,
    /// RPC password of the chain node
    #[arg(long, env = "XLN_NODE_RPC_PASSWORD", hide_env_values = true)]
    pub node_rpc_password: Option<String>,
    /// The chain node's RPC cookie file (bitcoind writes `<its datadir>/regtest/.cookie`)
    #[arg(long, env = "XLN_NODE_RPC_COOKIE")]
    pub node_rpc_cookie: Option<PathBuf>,
    /// Lightning P2P listen address host:port [default: 0.0.0.0:<the chain's Lightning port>]
    #[arg(long, env = "XLN_LISTEN")]
    pub listen: Option<String>,
    /// JSON-RPC listen address host:port; keep it on localhost unless you know why [default: 127.0.0.1:9835]
    #[arg(long, env = "XLN_RPC_LISTEN")]
    pub rpc_listen: Option<String>,
    /// Fixed JSON-RPC user (with --rpc-password), accepted besides the cookie
    #[arg(long, env = "XLN_RPC_USER")]
    pub rpc_user: Option<String>,
    /// Fixed JSON-RPC password
    #[arg(long, env = "XLN_RPC_PASSWORD", hide_env_values = true)]
    pub rpc_password: Option<String>,
    /// Node alias announced to the network (at most 32 bytes)
    #[arg(long, env = "XLN_ALIAS")]
    pub alias: Option<String>,
    /// Log level: error, warn, info, debug or trace (or a tracing filter) [default: info]
    #[arg(long, env = "XLN_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// How much of a channel a peer may have in HTLCs in flight towards us, in percent, for
    /// channels opened from now on (LDK Node uses 10) [default: 100]
    #[arg(long, env = "XLN_MAX_INBOUND_HTLC_IN_FLIGHT_PERCENT")]
    pub max_inbound_htlc_in_flight_percent: Option<u8>,
    /// How many HTLCs a peer may have in flight towards us at once, 1 to 483, for channels
    /// opened from now on (LND uses 483, LDK Node 50, Core Lightning 30) [default: 483]
    #[arg(long, env = "XLN_MAX_ACCEPTED_HTLCS")]
    pub max_accepted_htlcs: Option<u16>,
    /// On-chain sat the wallet keeps per anchor channel, for at most ten channels, so that a
    /// force close can always pay the child transaction that bumps its commitment's fee;
    /// withdraw and new channels leave it. 0 keeps nothing (LND keeps 10,000) [default: 10000
    /// on Bitcoin; Qtum's channels have no anchors]
    #[arg(long, env = "XLN_ANCHOR_RESERVE_PER_CHANNEL_SAT")]
    pub anchor_reserve_per_channel_sat: Option<u64>,
    /// Seconds an intercepted HTLC (see intercept_scid) may wait for resolvehtlc before it is
    /// failed back; 0: no time limit (LDK still fails it 39 blocks before its CLTV expiry)
    /// [default: 120]
    #[arg(long, env = "XLN_INTERCEPT_TIMEOUT_SECS")]
    pub intercept_timeout_secs: Option<u64>,
    /// When received HTLCs are forwarded or offered to the payee: "none" (at once, as LND and
    /// Core Lightning do) or "ldk" (after LDK's random delay, median 50 ms, at most 200 ms, so
    /// an observer of a routing node cannot pair incoming and outgoing HTLCs by timing; every
    /// payment through or to the node takes that much longer per hop) [default: none]
    #[arg(long, env = "XLN_HTLC_BATCHING")]
    pub htlc_batching: Option<String>,
    /// How often the chain node is asked for new blocks, in milliseconds, 100 to 60000. Fee
    /// estimates are refreshed with every new block (and every minute) [default: 2000]
    #[arg(long, env = "XLN_BLOCK_POLL_INTERVAL_MS")]
    pub block_poll_interval_ms: Option<u64>,
}

const EXAMPLES: &str = "Examples:
  xlnd --network regtest --node-rpc-cookie ~/.bitcoin/regtest/.cookie
  XLN_NODE_RPC_URL=http://127.0.0.1:18443 xlnd --datadir /srv/xln --alias my-node
Then talk to it with: xln-cli --datadir <datadir> getinfo";

/// The same settings as read from `xln.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    chain: Option<String>,
    network: Option<String>,
    node_rpc_url: Option<String>,
    node_rpc_user: Option<String>,
    node_rpc_password: Option<String>,
    node_rpc_cookie: Option<PathBuf>,
    listen: Option<String>,
    rpc_listen: Option<String>,
    rpc_user: Option<String>,
    rpc_password: Option<String>,
    alias: Option<String>,
    log_level: Option<String>,
    max_inbound_htlc_in_flight_percent: Option<u8>,
    max_accepted_htlcs: Option<u16>,
    anchor_reserve_per_channel_sat: Option<u64>,
    intercept_timeout_secs: Option<u64>,
    htlc_batching: Option<String>,
    block_poll_interval_ms: Option<u64>,
}

/// How often xlnd asks the chain node for new blocks unless told otherwise, ms.
const DEFAULT_BLOCK_POLL_INTERVAL_MS: u64 = 2000;
/// The allowed range of `block-poll-interval-ms`: more often than every 100 ms only loads the
/// chain node; less often than every minute leaves the node behind the chain.
const BLOCK_POLL_INTERVAL_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// The longest time limit on intercepted HTLCs, seconds: a week. Longer holds lock the payer's
/// funds for longer than any LSP or gateway decision takes.
const MAX_INTERCEPT_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// How xlnd authenticates to the chain node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRpcAuth {
    /// A cookie file.
    Cookie(PathBuf),
    /// User and password.
    UserPassword(String, String),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub datadir: PathBuf,
    /// Chain parameters.
    pub params: ChainParams,
    /// Chain node RPC URL.
    pub node_rpc_url: String,
    /// Chain node RPC credentials.
    pub node_rpc_auth: NodeRpcAuth,
    /// P2P listen address.
    pub listen: SocketAddr,
    /// JSON-RPC listen address.
    pub rpc_listen: SocketAddr,
    /// Fixed RPC credentials, if any.
    pub rpc_credentials: Option<(String, String)>,
    /// Alias.
    pub alias: String,
    /// Log filter.
    pub log_level: String,
    /// How much of a channel a peer may have in HTLCs in flight towards us, percent.
    pub max_inbound_htlc_in_flight_percent: u8,
    /// How many HTLCs a peer may have in flight towards us at once.
    pub max_accepted_htlcs: u16,
    /// On-chain sat kept per anchor channel for fee bumps; none: the chain's default.
    pub anchor_reserve_per_channel_sat: Option<u64>,
    /// How long an intercepted HTLC may wait for `resolvehtlc`; none: no time limit.
    pub intercept_timeout: Option<std::time::Duration>,
    /// When received HTLCs are forwarded or offered to the payee.
    pub htlc_batching: HtlcBatching,
    /// How often the chain node is asked for new blocks.
    pub block_poll_interval: std::time::Duration,
}

impl Config {
    /// Resolves flags (already merged with the environment by clap), the datadir's `xln.toml`
    /// and defaults. Every bad value is an error naming the setting.
    pub fn resolve(flags: Flags) -> Result<Self> {
        let chain_name = flags.chain.clone().unwrap_or_else(|| "bitcoin".to_owned());
        let network_name = flags
            .network
            .clone()
            .unwrap_or_else(|| "regtest".to_owned());
        let datadir = match &flags.datadir {
            Some(dir) => dir.clone(),
            None => home_dir()?
                .join(".xln")
                .join(format!("{chain_name}-{network_name}")),
        };
        let file = read_file_config(&datadir.join("xln.toml"))?;
        Self::from_sources(flags, datadir, file)
    }

    /// [`Config::resolve`] with the file already read: flags (and environment) over `file` over
    /// defaults, for the data directory `datadir`.
    pub(crate) fn from_sources(flags: Flags, datadir: PathBuf, file: FileConfig) -> Result<Self> {
        let pick = |flag: Option<String>, file: Option<String>| flag.or(file);
        let chain_name = pick(flags.chain, file.chain).unwrap_or_else(|| "bitcoin".to_owned());
        let network_name =
            pick(flags.network, file.network).unwrap_or_else(|| "regtest".to_owned());
        let chain: Chain = chain_name
            .parse()
            .map_err(|e| anyhow::anyhow!("chain {chain_name:?}: {e}"))?;
        let network: Network = network_name
            .parse()
            .map_err(|e| anyhow::anyhow!("network {network_name:?}: {e}"))?;
        let params = ChainParams::for_chain(chain, network)
            .with_context(|| format!("chain {chain} on {network}"))?;

        let node_rpc_url = pick(flags.node_rpc_url, file.node_rpc_url)
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", params.default_node_rpc_port));
        // Credentials from flags/environment win over any from the file, whichever kind.
        let node_rpc_auth = match node_auth(
            flags.node_rpc_user,
            flags.node_rpc_password,
            flags.node_rpc_cookie,
        )? {
            Some(auth) => auth,
            None => match node_auth(
                file.node_rpc_user,
                file.node_rpc_password,
                file.node_rpc_cookie,
            )? {
                Some(auth) => auth,
                None => NodeRpcAuth::Cookie(default_node_cookie(&params)?),
            },
        };
        let listen = parse_address(
            "listen",
            &pick(flags.listen, file.listen)
                .unwrap_or_else(|| format!("0.0.0.0:{}", params.default_lightning_port)),
        )?;
        let rpc_listen = parse_address(
            "rpc-listen",
            &pick(flags.rpc_listen, file.rpc_listen).unwrap_or_else(|| "127.0.0.1:9835".to_owned()),
        )?;
        let rpc_credentials = match (
            pick(flags.rpc_user, file.rpc_user),
            pick(flags.rpc_password, file.rpc_password),
        ) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Some((user, password))
            }
            (None, None) => None,
            _ => bail!("rpc-user and rpc-password go together and must not be empty"),
        };
        let alias = pick(flags.alias, file.alias).unwrap_or_default();
        if alias.len() > 32 {
            bail!("alias is {} bytes; at most 32 are allowed", alias.len());
        }
        let log_level = pick(flags.log_level, file.log_level).unwrap_or_else(|| "info".to_owned());
        let max_inbound_htlc_in_flight_percent = flags
            .max_inbound_htlc_in_flight_percent
            .or(file.max_inbound_htlc_in_flight_percent)
            .unwrap_or(100);
        if !(1..=100).contains(&max_inbound_htlc_in_flight_percent) {
            bail!(
                "max-inbound-htlc-in-flight-percent is {max_inbound_htlc_in_flight_percent}; it must be 1 to 100"
            );
        }
        let max_accepted_htlcs = flags
            .max_accepted_htlcs
            .or(file.max_accepted_htlcs)
            .unwrap_or(ln_core::node::policy::MAX_ACCEPTED_HTLCS);
        if !(1..=ln_core::node::policy::MAX_ACCEPTED_HTLCS).contains(&max_accepted_htlcs) {
            bail!("max-accepted-htlcs is {max_accepted_htlcs}; it must be 1 to 483");
        }
        let anchor_reserve_per_channel_sat = flags
            .anchor_reserve_per_channel_sat
            .or(file.anchor_reserve_per_channel_sat);
        if let Some(sat) = anchor_reserve_per_channel_sat {
            let most = bitcoin::Amount::MAX_MONEY.to_sat();
            if sat > most {
                bail!("anchor-reserve-per-channel-sat is {sat}; it must be at most {most}");
            }
        }
        let intercept_timeout_secs = flags
            .intercept_timeout_secs
            .or(file.intercept_timeout_secs)
            .unwrap_or(ln_core::node::DEFAULT_INTERCEPT_TIMEOUT.as_secs());
        if intercept_timeout_secs > MAX_INTERCEPT_TIMEOUT_SECS {
            bail!(
                "intercept-timeout-secs is {intercept_timeout_secs}; it must be at most {MAX_INTERCEPT_TIMEOUT_SECS} (a week), or 0 for no time limit"
            );
        }
        let intercept_timeout = (intercept_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(intercept_timeout_secs));
        let htlc_batching = match pick(flags.htlc_batching, file.htlc_batching).as_deref() {
            None | Some("none") => HtlcBatching::None,
            Some("ldk") => HtlcBatching::Ldk,
            Some(other) => bail!("htlc-batching is {other:?}; it must be \"none\" or \"ldk\""),
        };
        let block_poll_interval_ms = flags
            .block_poll_interval_ms
            .or(file.block_poll_interval_ms)
            .unwrap_or(DEFAULT_BLOCK_POLL_INTERVAL_MS);
        if !BLOCK_POLL_INTERVAL_MS.contains(&block_poll_interval_ms) {
            bail!(
                "block-poll-interval-ms is {block_poll_interval_ms}; it must be {} to {}",
                BLOCK_POLL_INTERVAL_MS.start(),
                BLOCK_POLL_INTERVAL_MS.end()
            );
        }
        Ok(Self {
            datadir,
            params,
            node_rpc_url,
            node_rpc_auth,
            listen,
            rpc_listen,
            rpc_credentials,
            alias,
            log_level,
            max_inbound_htlc_in_flight_percent,
            max_accepted_htlcs,
            anchor_reserve_per_channel_sat,
            intercept_timeout,
            htlc_batching,
            block_poll_interval: std::time::Duration::from_millis(block_poll_interval_ms),
        })
    }
}

/// One source's chain-node credentials: user and password, or else a cookie file.
fn node_auth(
    user: Option<String>,
    password: Option<String>,
    cookie: Option<PathBuf>,
) -> Result<Option<NodeRpcAuth>> {
    match (user, password, cookie) {
        (Some(user), Some(password), _) => Ok(Some(NodeRpcAuth::UserPassword(user, password))),
        (Some(_), None, _) | (None, Some(_), _) => {
            bail!("node-rpc-user and node-rpc-password go together")
        }
        (None, None, cookie) => Ok(cookie.map(NodeRpcAuth::Cookie)),
    }
}

fn home_dir() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set; give --datadir")
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            parse_file_config(&text).with_context(|| format!("config file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The settings of an `xln.toml`'s text; unknown keys are errors.
pub(crate) fn parse_file_config(text: &str) -> Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// Where the chain node's cookie is by default: bitcoind's default data directory.
fn default_node_cookie(params: &ChainParams) -> Result<PathBuf> {
    let base = home_dir()?.join(format!(".{}", params.chain));
    let sub = match params.network {
        Network::Mainnet => None,
        Network::Testnet => Some("testnet3"),
        Network::Signet => Some("signet"),
        Network::Regtest => Some("regtest"),
    };
    Ok(match sub {
        Some(sub) => base.join(sub).join(".cookie"),
        None => base.join(".cookie"),
    })
}

fn parse_address(setting: &str, value: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    value
        .to_socket_addrs()
        .with_context(|| format!("{setting} {value:?} is not host:port"))?
        .next()
        .with_context(|| format!("{setting} {value:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(datadir: &Path) -> Flags {
        Flags {
            datadir: Some(datadir.to_owned()),
            node_rpc_cookie: Some(datadir.join("cookie")),
            ..Flags::default()
        }
    }

    #[test]
    fn defaults_are_bitcoin_regtest_on_localhost() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Config::resolve(flags(dir.path()))?;
        assert_eq!(config.params.bolt11_prefix, "lnbcrt");
        assert_eq!(config.rpc_listen, "127.0.0.1:9835".parse()?);
        assert_eq!(config.node_rpc_url, "http://127.0.0.1:18443");
        Ok(())
    }

    #[test]
    fn qtum_regtest_defaults_to_qtumd_port_and_cookie() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let flags = Flags {
            chain: Some("qtum".to_owned()),
            ..flags(dir.path())
        };
        let config = Config::resolve(Flags {
            node_rpc_cookie: None,
            ..flags
        })?;
        assert_eq!(config.params.bolt11_prefix, "lnqcrt");
        assert_eq!(config.node_rpc_url, "http://127.0.0.1:13889");
        match config.node_rpc_auth {
            NodeRpcAuth::Cookie(path) => assert!(path.ends_with(".qtum/regtest/.cookie")),
            other => anyhow::bail!("expected the qtumd cookie, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() -> Result<()> {
        let flags = Flags::try_parse_from(["xlnd", "--chain=bitcoin", "--chain=qtum"])?;
        assert_eq!(flags.chain.as_deref(), Some("qtum"));
        Ok(())
    }

    #[test]
    fn flags_win_over_the_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("xln.toml"),
            "alias = \"from-file\"\nrpc_listen = \"127.0.0.1:1234\"\n",
        )?;
        let mut f = flags(dir.path());
        f.alias = Some("from-flag".to_owned());
        let config = Config::resolve(f)?;
        assert_eq!(config.alias, "from-flag");
        assert_eq!(config.rpc_listen, "127.0.0.1:1234".parse()?);
        Ok(())
    }

    #[test]
    fn intercept_timeout_defaults_to_120_s_and_zero_turns_it_off() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = Config::resolve(flags(dir.path()))?;
        assert_eq!(
            config.intercept_timeout,
            Some(std::time::Duration::from_secs(120))
        );
        std::fs::write(dir.path().join("xln.toml"), "intercept_timeout_secs = 0\n")?;
        assert_eq!(Config::resolve(flags(dir.path()))?.intercept_timeout, None);
        let mut f = flags(dir.path());
        f.intercept_timeout_secs = Some(30);
        assert_eq!(
            Config::resolve(f)?.intercept_timeout,
            Some(std::time::Duration::from_secs(30))
        );
        let mut f = flags(dir.path());
        f.intercept_timeout_secs = Some(MAX_INTERCEPT_TIMEOUT_SECS + 1);
        let error = Config::resolve(f).err().map(|e| format!("{e:#}"));
        assert!(error.unwrap_or_default().contains("intercept-timeout-secs"));
        Ok(())
    }

    #[test]
    fn htlc_batching_defaults_to_none_and_takes_ldk_from_the_file_or_a_flag() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(
            Config::resolve(flags(dir.path()))?.htlc_batching,
            HtlcBatching::None
        );
        std::fs::write(dir.path().join("xln.toml"), "htlc_batching = \"ldk\"\n")?;
        assert_eq!(
            Config::resolve(flags(dir.path()))?.htlc_batching,
            HtlcBatching::Ldk
        );
        let mut f = flags(dir.path());
        f.htlc_batching = Some("sometimes".to_owned());
        let error = Config::resolve(f).err().map(|e| format!("{e:#}"));
        assert_eq!(
            error.as_deref(),
            Some("htlc-batching is \"sometimes\"; it must be \"none\" or \"ldk\"")
        );
        Ok(())
    }

    #[test]
    fn block_poll_interval_defaults_to_2_s_and_refuses_what_is_out_of_range() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(
            Config::resolve(flags(dir.path()))?.block_poll_interval,
            std::time::Duration::from_secs(2)
        );
        std::fs::write(
            dir.path().join("xln.toml"),
            "block_poll_interval_ms = 250\n",
        )?;
        assert_eq!(
            Config::resolve(flags(dir.path()))?.block_poll_interval,
            std::time::Duration::from_millis(250)
        );
        for bad in [0, 99, 60_001] {
            let mut f = flags(dir.path());
            f.block_poll_interval_ms = Some(bad);
            let error = Config::resolve(f).err().map(|e| format!("{e:#}"));
            assert_eq!(
                error,
                Some(format!(
                    "block-poll-interval-ms is {bad}; it must be 100 to 60000"
                ))
            );
        }
        Ok(())
    }

    #[test]
    fn bad_values_are_named() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("xln.toml"), "colour = 1\n")?;
        let error = Config::resolve(flags(dir.path()))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(error.unwrap_or_default().contains("xln.toml"));
        std::fs::remove_file(dir.path().join("xln.toml"))?;
        let mut f = flags(dir.path());
        f.network = Some("moonnet".to_owned());
        let error = Config::resolve(f).err().map(|e| format!("{e:#}"));
        assert!(error.unwrap_or_default().contains("moonnet"));
        Ok(())
    }
}
