//! Finding xlnd: the URL of its JSON-RPC server and the HTTP Basic credentials to use, from the
//! flags (or their environment variables) or from the files xlnd writes into its datadir when it
//! starts: `rpc.url` (one line, e.g. `http://127.0.0.1:9835`) and `rpc.cookie` (one line,
//! `__cookie__:<64 hex chars>`).

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

/// The URL xlnd serves its JSON-RPC on unless `--rpc-listen` says otherwise.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:9835";
/// The file in the datadir holding the URL of the running daemon.
pub const URL_FILE_NAME: &str = "rpc.url";
/// The file in the datadir holding the cookie credentials of the running daemon.
pub const COOKIE_FILE_NAME: &str = "rpc.cookie";

/// What the user told xln-cli about where xlnd is (flags or environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `--datadir`: xlnd's data directory.
    pub datadir: Option<PathBuf>,
    /// `--chain`: picks the default datadir.
    pub chain: String,
    /// `--network`: picks the default datadir.
    pub network: String,
    /// `--rpc-url`: the JSON-RPC URL, overriding `rpc.url`.
    pub rpc_url: Option<String>,
    /// `--rpc-cookie`: a cookie file to read instead of the datadir's.
    pub rpc_cookie: Option<PathBuf>,
    /// `--rpc-user`: a fixed user, with `rpc_password`.
    pub rpc_user: Option<String>,
    /// `--rpc-password`: the fixed user's password.
    pub rpc_password: Option<String>,
}

/// HTTP Basic credentials for xlnd's JSON-RPC.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user (`__cookie__` for cookie credentials).
    pub user: String,
    password: String,
}

impl Credentials {
    /// Credentials of `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The value of the `Authorization` header: `Basic base64(user:password)`.
    pub fn authorization_header_value(&self) -> String {
        let user_and_password = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where the credentials came from, to give advice when the daemon refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsOrigin {
    /// `--rpc-user`/`--rpc-password`.
    FixedUser,
    /// A cookie file (the datadir's or `--rpc-cookie`).
    CookieFile(PathBuf),
}

/// A daemon to talk to: where it is and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonEndpoint {
    /// The JSON-RPC URL, e.g. `http://127.0.0.1:9835`.
    pub url: String,
    /// Where the URL came from, for messages ("from /home/me/.xln/bitcoin-regtest/rpc.url").
    pub url_origin: String,
    /// The HTTP Basic credentials.
    pub credentials: Credentials,
    /// Where the credentials came from.
    pub credentials_origin: CredentialsOrigin,
}

/// The daemon described by `settings`; `home` is the user's home directory, for the default
/// datadir. The datadir is only looked at for what the flags leave open.
pub fn resolve_endpoint(
    settings: &ConnectionSettings,
    home: Option<&Path>,
) -> Result<DaemonEndpoint> {
    let datadir = || match &settings.datadir {
        Some(datadir) => Ok(datadir.clone()),
        None => default_datadir(home, &settings.chain, &settings.network),
    };
    let (credentials, credentials_origin) = match (
        &settings.rpc_user,
        &settings.rpc_password,
        &settings.rpc_cookie,
    ) {
        (Some(user), Some(password), _) => (
            Credentials::new(user, password),
            CredentialsOrigin::FixedUser,
        ),
        (Some(_), None, _) => bail!("--rpc-user needs --rpc-password (or XLN_RPC_PASSWORD)"),
        (None, Some(_), _) => bail!("--rpc-password needs --rpc-user (or XLN_RPC_USER)"),
        (None, None, Some(cookie_path)) => {
            let credentials = read_cookie_file(cookie_path)?
                .with_context(|| format!("cookie file {} does not exist", cookie_path.display()))?;
            (
                credentials,
                CredentialsOrigin::CookieFile(cookie_path.clone()),
            )
        }
        (None, None, None) => {
            let datadir = datadir()?;
            let cookie_path = datadir.join(COOKIE_FILE_NAME);
            let credentials = read_cookie_file(&cookie_path)?.ok_or_else(|| {
                let mut message =
                    not_running_message(&datadir, &cookie_path, settings.rpc_url.is_some());
                // The default datadir is per chain and network: the daemon may be on another one.
                if let (None, Some(home)) = (&settings.datadir, home) {
                    for (chain, network) in daemons_in_default_datadirs(home) {
                        message.push_str(&format!(
                            "\nan xlnd wrote its cookie in {}: for it, add --chain {chain} --network {network}",
                            default_datadir(Some(home), &chain, &network)
                                .unwrap_or_default()
                                .display()
                        ));
                    }
                }
                anyhow::anyhow!(message)
            })?;
            (credentials, CredentialsOrigin::CookieFile(cookie_path))
        }
    };
    let credentials_from_datadir = settings.rpc_user.is_none()
        && settings.rpc_password.is_none()
        && settings.rpc_cookie.is_none();
    let (url, url_origin) = match &settings.rpc_url {
        Some(url) => (normalise_url(url)?, "from --rpc-url".to_owned()),
        // Without a datadir (no HOME), explicit credentials still go to the default URL.
        None => url_from_datadir(datadir().ok().as_deref(), credentials_from_datadir)?,
    };
    Ok(DaemonEndpoint {
        url,
        url_origin,
        credentials,
        credentials_origin,
    })
}

/// The URL in `<datadir>/rpc.url` and where it came from; the default URL when there is no such
/// file, unless the credentials came from the same datadir (then xlnd is not running there).
fn url_from_datadir(
    datadir: Option<&Path>,
    credentials_from_datadir: bool,
) -> Result<(String, String)> {
    let default = || (DEFAULT_RPC_URL.to_owned(), "the default".to_owned());
    let Some(datadir) = datadir else {
        return Ok(default());
    };
    let url_path = datadir.join(URL_FILE_NAME);
    match read_url_file(&url_path)? {
        Some(url) => Ok((url, format!("from {}", url_path.display()))),
        // The daemon that wrote the cookie writes the URL next to it.
        None if credentials_from_datadir => bail!(not_running_message(datadir, &url_path, false)),
        None => Ok(default()),
    }
}

/// `~/.xln/<chain>-<network>`, where xlnd keeps its data unless told otherwise.
pub fn default_datadir(home: Option<&Path>, chain: &str, network: &str) -> Result<PathBuf> {
    let home = home.context("HOME is not set, so there is no default datadir; give --datadir")?;
    Ok(home.join(".xln").join(format!("{chain}-{network}")))
}

/// `(chain, network)` of every default datadir (`~/.xln/<chain>-<network>`) that holds a cookie:
/// where an xlnd runs (or ran, if it was killed before it could delete its cookie).
fn daemons_in_default_datadirs(home: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(home.join(".xln")) else {
        return Vec::new();
    };
    let mut daemons: Vec<(String, String)> = entries
        .flatten()
        .filter(|entry| entry.path().join(COOKIE_FILE_NAME).is_file())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (chain, network) = name.split_once('-')?;
            Some((chain.to_owned(), network.to_owned()))
        })
        .collect();
    daemons.sort();
    daemons
}

/// The explanation for a datadir without the files a running xlnd writes.
fn not_running_message(datadir: &Path, missing_file: &Path, rpc_url_given: bool) -> String {
    let datadir = datadir.display();
    let missing_file = missing_file.display();
    let first_line = if rpc_url_given {
        format!(
            "no credentials for --rpc-url: {missing_file} does not exist, so xlnd does not seem to run \
             with datadir {datadir}"
        )
    } else {
        format!("xlnd does not seem to run with datadir {datadir}: {missing_file} does not exist")
    };
    format!(
        "{first_line}\n\
         xlnd writes rpc.url and rpc.cookie into its datadir when it starts. Start xlnd, or point \
         xln-cli at the running daemon:\n  \
         --datadir DIR (or --chain/--network for ~/.xln/<chain>-<network>), or\n  \
         --rpc-url URL with --rpc-cookie FILE or --rpc-user USER --rpc-password PASSWORD"
    )
}

/// The credentials in the cookie file at `path`, `None` if it does not exist.
fn read_cookie_file(path: &Path) -> Result<Option<Credentials>> {
    let Some(text) = read_optional_file(path)? else {
        return Ok(None);
    };
    parse_cookie(&text)
        .with_context(|| format!("cookie file {}", path.display()))
        .map(Some)
}

/// The credentials in a cookie file's text: one line `user:password`.
pub fn parse_cookie(text: &str) -> Result<Credentials> {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok(Credentials::new(user, password))
        }
        _ => bail!("it is not one line `user:password` (xlnd writes `__cookie__:<hex>`)"),
    }
}

/// The URL in the file at `path`, `None` if it does not exist.
fn read_url_file(path: &Path) -> Result<Option<String>> {
    let Some(text) = read_optional_file(path)? else {
        return Ok(None);
    };
    let line = text.lines().next().unwrap_or_default();
    normalise_url(line)
        .with_context(|| format!("URL file {}", path.display()))
        .map(Some)
}

fn read_optional_file(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `url` trimmed, with `http://` in front when it is a bare `host:port`.
pub fn normalise_url(url: &str) -> Result<String> {
    let url = url.trim();
    if url.is_empty() {
        bail!("the RPC URL is empty");
    }
    if url.contains("://") {
        Ok(url.to_owned())
    } else {
        Ok(format!("http://{url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            chain: "bitcoin".to_owned(),
            network: "regtest".to_owned(),
            ..Default::default()
        }
    }

    fn write_daemon_files(datadir: &Path, url: &str) -> std::io::Result<()> {
        std::fs::write(datadir.join(URL_FILE_NAME), format!("{url}\n"))?;
        std::fs::write(
            datadir.join(COOKIE_FILE_NAME),
            format!("__cookie__:{COOKIE_HEX}\n"),
        )
    }

    #[test]
    fn default_datadir_is_dot_xln_chain_network_in_home() -> Result<()> {
        let datadir = default_datadir(Some(Path::new("/home/alice")), "bitcoin", "regtest")?;
        assert_eq!(datadir, Path::new("/home/alice/.xln/bitcoin-regtest"));
        assert!(default_datadir(None, "bitcoin", "regtest").is_err());
        Ok(())
    }

    #[test]
    fn datadir_files_give_url_and_cookie_credentials() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        write_daemon_files(datadir.path(), "http://127.0.0.1:19835")?;
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                ..settings()
            },
            None,
        )?;
        assert_eq!(endpoint.url, "http://127.0.0.1:19835");
        assert_eq!(
            endpoint.credentials,
            Credentials::new("__cookie__", COOKIE_HEX)
        );
        assert_eq!(
            endpoint.credentials_origin,
            CredentialsOrigin::CookieFile(datadir.path().join(COOKIE_FILE_NAME))
        );
        Ok(())
    }

    #[test]
    fn default_datadir_under_home_is_used_without_flags() -> Result<()> {
        let home = tempfile::tempdir()?;
        let datadir = home.path().join(".xln").join("bitcoin-signet");
        std::fs::create_dir_all(&datadir)?;
        write_daemon_files(&datadir, "http://127.0.0.1:9999")?;
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                network: "signet".to_owned(),
                ..settings()
            },
            Some(home.path()),
        )?;
        assert_eq!(endpoint.url, "http://127.0.0.1:9999");
        Ok(())
    }

    #[test]
    fn a_daemon_on_another_chain_is_named_when_the_default_datadir_has_none() -> Result<()> {
        let home = tempfile::tempdir()?;
        let qtum = home.path().join(".xln").join("qtum-regtest");
        std::fs::create_dir_all(&qtum)?;
        write_daemon_files(&qtum, "http://127.0.0.1:9999")?;
        // A datadir without a running daemon is not named.
        std::fs::create_dir_all(home.path().join(".xln").join("bitcoin-signet"))?;
        let error = resolve_endpoint(&settings(), Some(home.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("bitcoin-regtest"), "{error}");
        assert!(
            error.contains(&format!(
                "an xlnd wrote its cookie in {}: for it, add --chain qtum --network regtest",
                qtum.display()
            )),
            "{error}"
        );
        assert!(!error.contains("signet"), "{error}");

        let qtum_settings = ConnectionSettings {
            chain: "qtum".to_owned(),
            ..settings()
        };
        let endpoint = resolve_endpoint(&qtum_settings, Some(home.path()))?;
        assert_eq!(endpoint.url, "http://127.0.0.1:9999");
        Ok(())
    }

    #[test]
    fn missing_files_say_the_daemon_does_not_seem_to_run_and_how_to_point_at_it() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        let error = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                ..settings()
            },
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.contains("xlnd does not seem to run with datadir"),
            "{error}"
        );
        assert!(error.contains("rpc.cookie does not exist"), "{error}");
        assert!(
            error.contains("--datadir DIR") && error.contains("--rpc-url URL"),
            "{error}"
        );

        std::fs::write(datadir.path().join(COOKIE_FILE_NAME), "__cookie__:ab\n")?;
        let error = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                ..settings()
            },
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("rpc.url does not exist"), "{error}");
        Ok(())
    }

    #[test]
    fn rpc_url_flag_overrides_the_url_file() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        write_daemon_files(datadir.path(), "http://127.0.0.1:19835")?;
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                rpc_url: Some("10.0.0.2:9835".to_owned()),
                ..settings()
            },
            None,
        )?;
        assert_eq!(endpoint.url, "http://10.0.0.2:9835");
        assert_eq!(endpoint.credentials.user, "__cookie__");
        Ok(())
    }

    #[test]
    fn cookie_flag_reads_that_file_and_url_defaults_when_datadir_has_none() -> Result<()> {
        let elsewhere = tempfile::tempdir()?;
        let cookie_path = elsewhere.path().join("my.cookie");
        std::fs::write(&cookie_path, "__cookie__:beef")?;
        let empty_datadir = tempfile::tempdir()?;
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(empty_datadir.path().to_owned()),
                rpc_cookie: Some(cookie_path.clone()),
                ..settings()
            },
            None,
        )?;
        assert_eq!(endpoint.credentials, Credentials::new("__cookie__", "beef"));
        assert_eq!(
            endpoint.credentials_origin,
            CredentialsOrigin::CookieFile(cookie_path)
        );
        assert_eq!(endpoint.url, DEFAULT_RPC_URL);
        Ok(())
    }

    #[test]
    fn missing_cookie_flag_file_is_an_error_naming_it() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        let cookie_path = datadir.path().join("nope.cookie");
        let error = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                rpc_cookie: Some(cookie_path),
                ..settings()
            },
            None,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("nope.cookie does not exist"), "{error}");
        Ok(())
    }

    #[test]
    fn fixed_user_and_password_win_and_need_each_other() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        write_daemon_files(datadir.path(), "http://127.0.0.1:19835")?;
        let base = ConnectionSettings {
            datadir: Some(datadir.path().to_owned()),
            ..settings()
        };
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                rpc_user: Some("alice".to_owned()),
                rpc_password: Some("s3cret".to_owned()),
                ..base.clone()
            },
            None,
        )?;
        assert_eq!(endpoint.credentials, Credentials::new("alice", "s3cret"));
        assert_eq!(endpoint.credentials_origin, CredentialsOrigin::FixedUser);
        assert_eq!(endpoint.url, "http://127.0.0.1:19835");
        let only_user = ConnectionSettings {
            rpc_user: Some("alice".to_owned()),
            ..base
        };
        assert!(resolve_endpoint(&only_user, None).is_err());
        Ok(())
    }

    #[test]
    fn fixed_user_without_any_datadir_files_uses_the_default_url() -> Result<()> {
        let datadir = tempfile::tempdir()?;
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                datadir: Some(datadir.path().to_owned()),
                rpc_user: Some("alice".to_owned()),
                rpc_password: Some("pw".to_owned()),
                ..settings()
            },
            None,
        )?;
        assert_eq!(endpoint.url, DEFAULT_RPC_URL);
        Ok(())
    }

    #[test]
    fn url_and_fixed_user_need_no_datadir_or_home() -> Result<()> {
        let endpoint = resolve_endpoint(
            &ConnectionSettings {
                rpc_url: Some("http://127.0.0.1:1".to_owned()),
                rpc_user: Some("alice".to_owned()),
                rpc_password: Some("pw".to_owned()),
                ..settings()
            },
            None,
        )?;
        assert_eq!(endpoint.url, "http://127.0.0.1:1");
        Ok(())
    }

    #[test]
    fn cookie_text_must_be_user_colon_password() {
        assert_eq!(
            parse_cookie("__cookie__:abcd\n").ok(),
            Some(Credentials::new("__cookie__", "abcd"))
        );
        assert_eq!(
            parse_cookie("u:p:q").ok(),
            Some(Credentials::new("u", "p:q"))
        );
        assert!(parse_cookie("").is_err());
        assert!(parse_cookie("no-colon").is_err());
        assert!(parse_cookie("__cookie__:").is_err());
    }

    #[test]
    fn authorization_header_is_basic_base64_of_user_colon_password() {
        // base64("Aladdin:open sesame"), the example of RFC 7617.
        assert_eq!(
            Credentials::new("Aladdin", "open sesame").authorization_header_value(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let printed = format!("{:?}", Credentials::new("__cookie__", COOKIE_HEX));
        assert!(!printed.contains(COOKIE_HEX), "{printed}");
    }

    #[test]
    fn urls_get_a_scheme_when_given_as_host_port() -> Result<()> {
        assert_eq!(normalise_url(" 127.0.0.1:9835\n")?, "http://127.0.0.1:9835");
        assert_eq!(
            normalise_url("https://node.example:443/")?,
            "https://node.example:443/"
        );
        assert!(normalise_url("  ").is_err());
        Ok(())
    }
}
