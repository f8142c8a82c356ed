//! The node's seed: the 32 secret bytes every key of an xln node comes from.
//!
//! One seed yields both the Lightning keys, through LDK's [`KeysManager`]
//! ([`NodeSeed::keys_manager`]), and the on-chain wallet's BIP32 master key
//! ([`NodeSeed::wallet_master_key`]). It lives in one file of exactly 32 raw bytes, mode 0600,
//! that is written once and never replaced: [`load_or_create`] makes it on the first start and
//! reads it on every later one, [`load_existing`] reads it without ever making one (for showing
//! the backup words of a running node), and [`restore_to`] writes it back from its 24-word backup.
//!
//! The backup words ([`NodeSeed::to_mnemonic`]) are the BIP39 encoding of the seed itself: the
//! seed is the mnemonic's *entropy*, not the output of BIP39's PBKDF2 step. Other BIP39 wallets
//! given these words would derive different keys, so they are a backup of this node, not a wallet
//! to import elsewhere.
//!
//! A seed file is published without ever overwriting one: it is written to `<path>.tmp` (created
//! exclusively, mode 0600), synced, then hard-linked to `<path>`, which fails rather than replaces
//! if `<path>` appeared meanwhile, and the directory is synced. A seed that is in use can therefore
//! never be lost to a concurrent or interrupted write.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bip39::{Language, Mnemonic};
use bitcoin::bip32::Xpriv;
use bitcoin::NetworkKind;
use lightning::sign::KeysManager;

/// Length of a seed, in bytes.
const SEED_LEN: usize = 32;
/// Number of words in the mnemonic of a 32-byte seed.
const MNEMONIC_WORDS: usize = 24;
/// Permission bits of a seed file that, when set, let users other than its owner at it.
const GROUP_OTHER_BITS: u32 = 0o077;

/// The node's 32-byte secret seed.
///
/// Its `Debug` output is redacted and it has no `Display`: the bytes leave this type only as the
/// keys derived from them or as the operator's backup words ([`NodeSeed::to_mnemonic`]).
pub struct NodeSeed([u8; SEED_LEN]);

impl fmt::Debug for NodeSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeSeed(<redacted>)")
    }
}

/// Whether [`load_or_create`] found a seed file or made a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOrigin {
    /// There was no seed file; a fresh seed was generated and saved. The operator should back it up.
    Created,
    /// The existing seed file was read.
    Loaded,
}

/// Why a seed could not be loaded, saved, decoded or used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A file-system operation (or reading the OS's randomness) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The seed file does not hold exactly 32 bytes. It is left untouched.
    #[error(
        "seed file {} is {len} bytes long, not 32: it is damaged or not an xln seed file; it was \
         left untouched, restore it from a backup or from its 24 words",
        .path.display()
    )]
    Corrupt {
        /// The seed file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The seed file can be accessed by users other than its owner, so it is refused.
    #[error(
        "seed file {} has mode {mode:04o}, which lets other users at it; run `chmod 600 {}` and \
         start again (and consider whether the seed has leaked)",
        .path.display(),
        .path.display()
    )]
    InsecurePermissions {
        /// The seed file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The words are not the 24-word English BIP39 mnemonic of a seed.
    #[error("invalid seed mnemonic: {0}")]
    InvalidMnemonic(String),
    /// A seed file already exists where a new one was to be written; it was left untouched.
    #[error(
        "refusing to overwrite the existing seed file {}: it holds a node's keys; move it away \
         first if you really mean to replace them",
        .path.display()
    )]
    AlreadyExists {
        /// The existing seed file.
        path: PathBuf,
    },
    /// There is no seed file where one must already be; nothing was created.
    #[error(
        "there is no seed file at {}: it was moved or deleted; no new seed was created. Restore \
         the file from your backup (mode 0600) before anything else",
        .path.display()
    )]
    Missing {
        /// Where the seed file should be.
        path: PathBuf,
    },
    /// The seed does not give a valid BIP32 master key (probability about 2^-128).
    #[error("the seed does not give a valid BIP32 master key: {0}")]
    KeyDerivation(#[from] bitcoin::bip32::Error),
}

/// Loads the node's seed from `path`, or creates it there with fresh OS randomness if there is no
/// file.
///
/// An existing file must hold exactly 32 bytes ([`SeedError::Corrupt`] otherwise) and must not be
/// accessible by group or others ([`SeedError::InsecurePermissions`]); a refused file is never
/// replaced. A new file is created with mode 0600, its missing parent directories with mode 0700.
pub fn load_or_create(path: &Path) -> Result<(NodeSeed, SeedOrigin), SeedError> {
    if let Some(file) = open_if_exists(path)? {
        let seed = read_seed_file(file, path)?;
        tracing::debug!(path = %path.display(), "loaded the node seed");
        return Ok((seed, SeedOrigin::Loaded));
    }
    let seed = NodeSeed::generate()?;
    match write_new_seed_file(path, &seed) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new node seed; back it up now");
            Ok((seed, SeedOrigin::Created))
        }
        // Another process created the file since we looked: its seed is the node's, not ours.
        Err(SeedError::AlreadyExists { .. }) => {
            let file = File::open(path).map_err(|source| {
                io_error(format!("opening seed file {}", path.display()), source)
            })?;
            Ok((read_seed_file(file, path)?, SeedOrigin::Loaded))
        }
        Err(e) => Err(e),
    }
}

/// Reads the existing seed file at `path`, with the checks of [`load_or_create`], and never
/// creates one: no file is [`SeedError::Missing`], and nothing (file or directory) is written.
///
/// For anything that shows or exports the seed of a node that already has one (its backup words):
/// a fresh seed made there would not be the node's, and its words would back up nothing.
pub fn load_existing(path: &Path) -> Result<NodeSeed, SeedError> {
    match open_if_exists(path)? {
        Some(file) => read_seed_file(file, path),
        None => Err(SeedError::Missing {
            path: path.to_path_buf(),
        }),
    }
}

/// Writes `seed` to a new seed file at `path`, the same crash-safe way [`load_or_create`] does.
///
/// Fails with [`SeedError::AlreadyExists`] if there is a file at `path` already, which is left
/// untouched.
pub fn restore_to(path: &Path, seed: &NodeSeed) -> Result<(), SeedError> {
    write_new_seed_file(path, seed)?;
    tracing::info!(path = %path.display(), "restored the node seed");
    Ok(())
}

impl NodeSeed {
    /// Decodes the seed from its 24-word English BIP39 mnemonic (case and spacing don't matter).
    ///
    /// Fails with [`SeedError::InvalidMnemonic`], naming the position of any unknown word, if the
    /// words are not 24 or do not pass the BIP39 checksum.
    pub fn from_mnemonic(words: &str) -> Result<NodeSeed, SeedError> {
        let words = words.to_lowercase();
        let word_count = words.split_whitespace().count();
        if word_count != MNEMONIC_WORDS {
            return Err(SeedError::InvalidMnemonic(format!(
                "expected {MNEMONIC_WORDS} words, got {word_count}"
            )));
        }
        // Normalisation (NFKD) is the identity on the all-ASCII English list.
        let mnemonic =
            Mnemonic::parse_in_normalized(Language::English, &words).map_err(|e| match e {
                // The word itself is a piece of a secret; name only its place.
                bip39::Error::UnknownWord(index) => SeedError::InvalidMnemonic(format!(
                    "word {} is not in the BIP39 English word list",
                    index + 1
                )),
                bip39::Error::InvalidChecksum => SeedError::InvalidMnemonic(
                    "the checksum does not match: a word is wrong or the words are out of order"
                        .to_owned(),
                ),
                other => SeedError::InvalidMnemonic(other.to_string()),
            })?;
        let (entropy, entropy_len) = mnemonic.to_entropy_array();
        entropy
            .get(..entropy_len)
            .and_then(|bytes| <[u8; SEED_LEN]>::try_from(bytes).ok())
            .map(NodeSeed)
            .ok_or_else(|| {
                SeedError::InvalidMnemonic(format!("decodes to {entropy_len} bytes, not 32"))
            })
    }

    /// The seed's 24-word English BIP39 mnemonic, words separated by single spaces: the operator's
    /// backup of this node. It is as secret as the seed.
    pub fn to_mnemonic(&self) -> String {
        match Mnemonic::from_entropy_in(Language::English, &self.0) {
            Ok(mnemonic) => mnemonic.to_string(),
            // BIP39 takes any entropy of 16 to 32 bytes in steps of 4; a seed is always 32.
            Err(e) => unreachable!("a 32-byte seed is valid BIP39 entropy: {e}"),
        }
    }

    /// LDK's key manager over this seed (the seed itself is LDK's BIP32 seed; node id is `m/0'`).
    ///
    /// `now` must differ on every start of the node (the time since the Unix epoch does): LDK mixes
    /// it into the randomness of its ephemeral keys.
    pub fn keys_manager(&self, now: Duration) -> KeysManager {
        // `v2_remote_key_derivation = true`, as LDK Node does: a counterparty's force close pays us
        // to one of a fixed set of scripts derived from the seed, so those funds can be found from
        // the seed alone. It applies to new and spliced channels only, and forbids downgrading to
        // an LDK older than 0.2; a new node has neither old channels nor an older LDK.
        KeysManager::new(&self.0, now.as_secs(), now.subsec_nanos(), true)
    }

    /// The BIP32 master key of the on-chain wallet: `Xpriv::new_master(network, seed)`, as LDK Node
    /// derives its wallet's master key from its seed.
    ///
    /// This is the same master key (up to the serialisation network) that LDK's [`KeysManager`]
    /// builds from the seed. LDK uses its hardened children `m/0'` to `m/8'` directly (node key,
    /// close scripts, channel keys, ...), so the wallet must derive only under BIP44/49/84/86
    /// purpose paths (`m/84'/...`), never under `m/0'`..`m/8'`.
    pub fn wallet_master_key(&self, network: NetworkKind) -> Result<Xpriv, SeedError> {
        Ok(Xpriv::new_master(network, &self.0)?)
    }

    /// A fresh seed from the operating system's CSPRNG.
    fn generate() -> Result<NodeSeed, SeedError> {
        let mut bytes = [0u8; SEED_LEN];
        getrandom::fill(&mut bytes).map_err(|e| {
            io_error(
                "reading randomness from the operating system".to_owned(),
                e.into(),
            )
        })?;
        Ok(NodeSeed(bytes))
    }
}

fn io_error(context: String, source: io::Error) -> SeedError {
    SeedError::Io { context, source }
}

/// Opens the seed file, or `None` if there is none.
fn open_if_exists(path: &Path) -> Result<Option<File>, SeedError> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(
            format!("opening seed file {}", path.display()),
            source,
        )),
    }
}

/// Checks and reads an opened seed file. The checks use the opened file's metadata, so they are
/// about the very file that is read.
fn read_seed_file(mut file: File, path: &Path) -> Result<NodeSeed, SeedError> {
    let metadata = file
        .metadata()
        .map_err(|source| io_error(format!("inspecting seed file {}", path.display()), source))?;
    if !metadata.is_file() {
        return Err(io_error(
            format!("reading seed file {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(SeedError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if metadata.len() != SEED_LEN as u64 {
        return Err(SeedError::Corrupt {
            path: path.to_path_buf(),
            len: metadata.len(),
        });
    }
    let mut bytes = [0u8; SEED_LEN];
    file.read_exact(&mut bytes)
        .map_err(|source| io_error(format!("reading seed file {}", path.display()), source))?;
    Ok(NodeSeed(bytes))
}

/// Publishes `seed` at `path` without ever replacing a file there (see the module docs).
fn write_new_seed_file(path: &Path, seed: &NodeSeed) -> Result<(), SeedError> {
    let dir = parent_dir(path);
    create_private_dir_all(dir)?;
    let tmp_path = tmp_path_for(path);
    let tmp_file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .map_err(|source| {
            let context = if source.kind() == io::ErrorKind::AlreadyExists {
                format!(
                    "creating {}: it is left over from an interrupted seed write and is safe to \
                     delete (no node uses a seed that only it holds); delete it and retry",
                    tmp_path.display()
                )
            } else {
                format!("creating {}", tmp_path.display())
            };
            io_error(context, source)
        })?;
    let published = write_and_link(tmp_file, &tmp_path, path, seed);
    // The temporary file is ours (created exclusively) and not needed whether or not that worked.
    if let Err(e) = fs::remove_file(&tmp_path) {
        tracing::warn!(path = %tmp_path.display(), error = %e, "could not remove temporary seed file");
    }
    published?;
    sync_dir(dir)
}

fn write_and_link(
    mut tmp_file: File,
    tmp_path: &Path,
    path: &Path,
    seed: &NodeSeed,
) -> Result<(), SeedError> {
    tmp_file
        .write_all(&seed.0)
        .and_then(|()| tmp_file.sync_all())
        .map_err(|source| io_error(format!("writing {}", tmp_path.display()), source))?;
    drop(tmp_file);
    // Unlike `rename`, `hard_link` fails instead of replacing an existing `path`.
    fs::hard_link(tmp_path, path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SeedError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            io_error(
                format!("linking {} to {}", tmp_path.display(), path.display()),
                source,
            )
        }
    })
}

/// Creates `dir` and its missing ancestors with mode 0700, and makes their entries durable.
fn create_private_dir_all(dir: &Path) -> Result<(), SeedError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|ancestor| {
            !ancestor.as_os_str().is_empty() && !matches!(ancestor.try_exists(), Ok(true))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| io_error(format!("creating directory {}", dir.display()), source))?;
    for created in missing.iter().rev() {
        sync_dir(parent_dir(created))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), SeedError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| io_error(format!("syncing directory {}", dir.display()), source))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `<path>.tmp`.
fn tmp_path_for(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;
    use std::str::FromStr;

    use bitcoin::bip32::{ChildNumber, Xpub};
    use bitcoin::secp256k1::{PublicKey, Secp256k1};
    use lightning::sign::{NodeSigner, Recipient};

    use super::*;

    type TestResult = Result<(), Box<dyn Error>>;

    fn node_id(seed: &NodeSeed) -> Result<PublicKey, Box<dyn Error>> {
        let keys = seed.keys_manager(Duration::from_secs(1_700_000_000));
        Ok(keys
            .get_node_id(Recipient::Node)
            .map_err(|()| "KeysManager gave no node id")?)
    }

    fn mode_of(path: &Path) -> io::Result<u32> {
        Ok(fs::metadata(path)?.mode() & 0o777)
    }

    #[test]
    fn seed_file_is_created_with_mode_0600_and_reloaded_identically() -> TestResult {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data").join("node");
        let path = data_dir.join("seed");

        let (created, origin) = load_or_create(&path)?;
        assert_eq!(origin, SeedOrigin::Created);
        assert_eq!(mode_of(&path)?, 0o600);
        assert_eq!(mode_of(&data_dir)?, 0o700);
        assert_eq!(fs::read(&path)?, created.0);
        assert!(
            !tmp_path_for(&path).exists(),
            "the temporary file is cleaned up"
        );

        let (loaded, origin) = load_or_create(&path)?;
        assert_eq!(origin, SeedOrigin::Loaded);
        assert_eq!(loaded.0, created.0);
        assert_eq!(node_id(&loaded)?, node_id(&created)?);
        Ok(())
    }

    #[test]
    fn corrupt_seed_file_is_refused_not_replaced() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("seed");
        let short = [7u8; 31];
        fs::write(&path, short)?;
        fs::set_permissions(&path, Permissions::from_mode(0o600))?;

        let result = load_or_create(&path);
        assert!(
            matches!(result, Err(SeedError::Corrupt { len: 31, .. })),
            "got {result:?}"
        );
        assert_eq!(fs::read(&path)?, short);
        assert!(!tmp_path_for(&path).exists());
        Ok(())
    }

    #[test]
    fn world_readable_seed_file_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("seed");
        load_or_create(&path)?;
        fs::set_permissions(&path, Permissions::from_mode(0o644))?;

        let error = match load_or_create(&path) {
            Err(error) => error,
            Ok(_) => return Err("a world-readable seed file was accepted".into()),
        };
        assert!(
            matches!(error, SeedError::InsecurePermissions { mode: 0o644, .. }),
            "got {error:?}"
        );
        assert!(error.to_string().contains("chmod 600"), "message: {error}");
        Ok(())
    }

    #[test]
    fn mnemonic_round_trips_and_restores_the_same_node_id() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (original, _) = load_or_create(&dir.path().join("seed"))?;
        let words = original.to_mnemonic();
        assert_eq!(words.split(' ').count(), 24);

        let decoded = NodeSeed::from_mnemonic(&format!("  {}\n", words.to_uppercase()))?;
        let restored_path = dir.path().join("restored").join("seed");
        restore_to(&restored_path, &decoded)?;
        assert_eq!(mode_of(&restored_path)?, 0o600);

        let (restored, origin) = load_or_create(&restored_path)?;
        assert_eq!(origin, SeedOrigin::Loaded);
        assert_eq!(node_id(&restored)?, node_id(&original)?);
        Ok(())
    }

    #[test]
    fn reading_the_words_of_a_missing_seed_creates_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let path = data_dir.join("seed");

        let result = load_existing(&path);
        assert!(
            matches!(&result, Err(SeedError::Missing { path: missing }) if *missing == path),
            "got {result:?}"
        );
        let message = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("no new seed was created"),
            "message: {message}"
        );
        assert!(!path.exists(), "no seed file was created");
        assert!(!tmp_path_for(&path).exists(), "no temporary file was left");
        assert!(!data_dir.exists(), "no directory was created");

        // The parent existing changes nothing.
        fs::create_dir(&data_dir)?;
        assert!(matches!(
            load_existing(&path),
            Err(SeedError::Missing { .. })
        ));
        assert_eq!(fs::read_dir(&data_dir)?.count(), 0);
        Ok(())
    }

    #[test]
    fn reading_an_existing_seed_gives_the_same_seed_with_the_same_checks() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("seed");
        let (created, _) = load_or_create(&path)?;

        let read = load_existing(&path)?;
        assert_eq!(read.0, created.0);
        assert_eq!(read.to_mnemonic(), created.to_mnemonic());

        fs::set_permissions(&path, Permissions::from_mode(0o640))?;
        assert!(matches!(
            load_existing(&path),
            Err(SeedError::InsecurePermissions { mode: 0o640, .. })
        ));
        fs::set_permissions(&path, Permissions::from_mode(0o600))?;
        fs::write(&path, [1u8; 33])?;
        assert!(matches!(
            load_existing(&path),
            Err(SeedError::Corrupt { len: 33, .. })
        ));
        assert_eq!(
            fs::read(&path)?,
            [1u8; 33],
            "a refused file is left untouched"
        );
        Ok(())
    }

    #[test]
    fn restore_refuses_to_overwrite_an_existing_seed_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("seed");
        let (existing, _) = load_or_create(&path)?;

        let result = restore_to(&path, &NodeSeed([1u8; 32]));
        assert!(
            matches!(result, Err(SeedError::AlreadyExists { .. })),
            "got {result:?}"
        );
        assert_eq!(fs::read(&path)?, existing.0);
        assert!(!tmp_path_for(&path).exists());
        Ok(())
    }

    #[test]
    fn invalid_mnemonic_is_a_clear_error() {
        let abandons = |n: usize| vec!["abandon"; n].join(" ");
        let cases = [
            // Valid BIP39, but of a 16-byte seed.
            (
                format!("{} about", abandons(11)),
                "expected 24 words, got 12",
            ),
            (format!("{} abandon", abandons(23)), "checksum"),
            (
                format!("abandon abandon bitcoin {}", abandons(21)),
                "word 3 is not in",
            ),
            (String::new(), "expected 24 words, got 0"),
        ];
        for (words, expected) in cases {
            match NodeSeed::from_mnemonic(&words) {
                Err(error @ SeedError::InvalidMnemonic(_)) => assert!(
                    error.to_string().contains(expected),
                    "{words:?}: {error} does not mention {expected:?}"
                ),
                other => panic!("{words:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_never_contains_the_seed() {
        let seed = NodeSeed([0xab; 32]);
        let debug = format!("{seed:?} {seed:#?}");
        assert_eq!(format!("{seed:?}"), "NodeSeed(<redacted>)");
        assert!(!debug.contains("abab") && !debug.contains("171"), "{debug}");
    }

    #[test]
    fn seeds_have_the_reference_bip39_mnemonics() -> TestResult {
        // Test vectors of the BIP39 reference implementation (trezor/python-mnemonic).
        let vectors = [
            (0x00, format!("{} art", vec!["abandon"; 23].join(" "))),
            (
                0x7f,
                "legal winner thank year wave sausage worth useful legal winner thank year wave \
                 sausage worth useful legal winner thank year wave sausage worth title"
                    .to_owned(),
            ),
            (
                0x80,
                "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd \
                 amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless"
                    .to_owned(),
            ),
            (0xff, format!("{} vote", vec!["zoo"; 23].join(" "))),
        ];
        for (byte, words) in vectors {
            assert_eq!(NodeSeed([byte; 32]).to_mnemonic(), words);
            assert_eq!(NodeSeed::from_mnemonic(&words)?.0, [byte; 32]);
        }
        Ok(())
    }

    #[test]
    fn wallet_master_key_is_the_bip32_master_of_the_seed() -> TestResult {
        // BIP32 test vector 4, whose seed happens to be 32 bytes.
        let seed_hex = "3ddd5602285899a946114506157c7997e5444528f3003f6134712147db19b678";
        let mut seed = [0u8; 32];
        for (byte, pair) in seed.iter_mut().zip(seed_hex.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair)?, 16)?;
        }
        let master = NodeSeed(seed).wallet_master_key(NetworkKind::Main)?;
        assert_eq!(
            master,
            Xpriv::from_str(
                "xprv9s21ZrQH143K48vGoLGRPxgo2JNkJ3J3fqkirQC2zVdk5Dgd5w14S7fRDyHH4dWNHUgkvsvNDCkvAwcSHNAQwhwgNMgZhLtQC63zxwhQmRv"
            )?
        );
        Ok(())
    }

    #[test]
    fn node_id_is_m_0h_under_the_wallet_master_key() -> TestResult {
        // Pins the documented layout: wallet and LDK share one master, LDK takes m/0'..m/8'.
        let seed = NodeSeed([42u8; 32]);
        let secp = Secp256k1::new();
        let node_key = seed
            .wallet_master_key(NetworkKind::Test)?
            .derive_priv(&secp, &[ChildNumber::from_hardened_idx(0)?])?;
        assert_eq!(
            Xpub::from_priv(&secp, &node_key).public_key,
            node_id(&seed)?
        );
        Ok(())
    }
}
