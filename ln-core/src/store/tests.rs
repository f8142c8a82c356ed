//! Tests of the store: LDK's `KVStoreSync` contract, xln namespaces, locking, crash durability.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use lightning::io::ErrorKind;
use lightning::util::persist::KVStoreSync;

use super::{SledStore, StoreError};

type TestResult = Result<(), Box<dyn std::error::Error>>;
const NOT_FOUND: Option<ErrorKind> = Some(ErrorKind::NotFound);
const REFUSED: Option<ErrorKind> = Some(ErrorKind::InvalidInput);

fn kind<T>(result: Result<T, lightning::io::Error>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

fn is_locked(opened: &Result<SledStore, StoreError>) -> bool {
    matches!(opened, Err(StoreError::Locked { .. }))
}

#[test]
fn written_value_is_read_back_after_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let store = SledStore::open(dir.path())?;
        store.write("monitors", "", "abc_0", vec![1, 2, 3])?;
        store.write("", "", "manager", vec![4; 100_000])?;
        store.write("monitors", "", "abc_0", vec![5])?;
    }
    let store = SledStore::open(dir.path())?;
    assert_eq!(store.read("monitors", "", "abc_0")?, vec![5]);
    assert_eq!(store.read("", "", "manager")?, vec![4; 100_000]);
    Ok(())
}

#[test]
fn read_of_missing_key_is_not_found() -> TestResult {
    let store = SledStore::open(tempfile::tempdir()?.path())?;
    assert_eq!(kind(store.read("nowhere", "sub", "key")), NOT_FOUND);
    store.write("monitor_updates", "m1", "1", vec![1])?;
    assert_eq!(kind(store.read("monitor_updates", "m1", "2")), NOT_FOUND);
    assert!(store.list("nowhere", "sub")?.is_empty());
    let trees = store.db.tree_names();
    let created = trees.iter().any(|name| name.starts_with(b"ldk/nowhere"));
    assert!(!created, "a read or list created a tree");
    Ok(())
}

#[test]
fn list_returns_exactly_the_namespace_keys() -> TestResult {
    let store = SledStore::open(tempfile::tempdir()?.path())?;
    let entries = [
        ("a", "b", "k1"),
        ("a", "b", "k2"),
        ("a", "", "k3"),
        ("a", "bc", "k4"),
    ];
    for (primary, secondary, key) in entries.into_iter().chain([("", "", "k5"), ("ab", "", "k")]) {
        store.write(primary, secondary, key, Vec::new())?;
    }
    let mut listed = store.list("a", "b")?;
    listed.sort();
    assert_eq!(listed, ["k1", "k2"]);
    assert_eq!(store.list("a", "")?, ["k3"]);
    assert_eq!(store.list("", "")?, ["k5"]);
    assert!(store.list("a", "x")?.is_empty());
    Ok(())
}

#[test]
fn remove_is_idempotent() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let store = SledStore::open(dir.path())?;
        store.remove("nowhere", "", "never", false)?;
        store.write("a", "", "k", vec![1])?;
        store.remove("a", "", "k", false)?;
        store.remove("a", "", "k", false)?;
        store.write("a", "", "lazy", vec![1])?;
        store.remove("a", "", "lazy", true)?;
        store.remove("a", "", "lazy", true)?;
        assert_eq!(kind(store.read("a", "", "lazy")), NOT_FOUND);
        store.write("a", "", "lazy", vec![2])?;
    }
    let store = SledStore::open(dir.path())?;
    assert_eq!(kind(store.read("a", "", "k")), NOT_FOUND);
    assert_eq!(store.read("a", "", "lazy")?, vec![2]);
    assert_eq!(store.list("a", "")?, ["lazy"]);
    Ok(())
}

#[test]
fn invalid_namespace_or_key_is_refused() -> TestResult {
    let store = SledStore::open(tempfile::tempdir()?.path())?;
    let (max, long) = ("x".repeat(120), "x".repeat(121));
    store.write(&max, &max, &max, vec![1])?;
    let long = long.as_str();
    let invalid = [
        ("a", "", ""),
        ("", "b", "k"),
        ("a/b", "", "k"),
        ("a", "", "k/1"),
        ("a", "", "ké"),
        ("a", "", "k 1"),
        (long, "", "k"),
        ("a", long, "k"),
        ("a", "", long),
    ];
    for (primary, secondary, key) in invalid {
        assert_eq!(kind(store.write(primary, secondary, key, vec![1])), REFUSED);
        assert_eq!(kind(store.read(primary, secondary, key)), REFUSED);
        assert_eq!(kind(store.remove(primary, secondary, key, false)), REFUSED);
    }
    assert_eq!(kind(store.list("", "b")), REFUSED);
    assert_eq!(kind(store.list("a.b", "")), REFUSED);
    Ok(())
}

#[test]
fn second_open_of_same_directory_is_refused_while_first_is_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = SledStore::open(dir.path())?;
    let namespace = first.namespace("payments")?;
    let second = SledStore::open(dir.path());
    assert!(is_locked(&second), "{second:?}");
    let message = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("another process is using the data directory"),
        "{message}"
    );
    drop(first);
    assert!(
        is_locked(&SledStore::open(dir.path())),
        "a namespace keeps the database open"
    );
    drop(namespace);
    SledStore::open(dir.path())?;
    Ok(())
}

#[test]
fn namespace_writes_and_batches_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let namespace = SledStore::open(dir.path())?.namespace("sync")?;
        namespace.put(b"a", b"1")?;
        namespace.put_many((0u8..5).map(|i| ([b'b', i], [i])))?;
        namespace.put(b"c", b"3")?;
        namespace.remove(b"c")?;
        namespace.remove(b"c")?;
    }
    let store = SledStore::open(dir.path())?;
    let namespace = store.namespace("sync")?;
    assert_eq!(namespace.get(b"a")?, Some(b"1".to_vec()));
    assert_eq!(namespace.get(b"c")?, None);
    let batch: Vec<_> = (0u8..5).map(|i| (vec![b'b', i], vec![i])).collect();
    assert_eq!(namespace.iter_prefix(b"b")?, batch);
    assert_eq!(namespace.last()?, Some((vec![b'b', 4], vec![4])));
    namespace.remove_range_below(&[b'b', 3])?;
    assert_eq!(namespace.iter_prefix(b"")?, batch[3..]);
    assert_eq!(store.namespace("other")?.last()?, None);
    assert!(store.list("", "")?.is_empty());
    Ok(())
}

#[test]
fn namespace_first_and_remove_range_from_cut_the_ordered_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let namespace = SledStore::open(dir.path())?.namespace("heights")?;
        assert_eq!(namespace.first()?, None);
        namespace.put_many((10u32..20).map(|h| (h.to_be_bytes(), [1])))?;
        assert_eq!(
            namespace.first()?,
            Some((10u32.to_be_bytes().to_vec(), vec![1]))
        );
        namespace.remove_range_from(&15u32.to_be_bytes())?;
        namespace.remove_range_from(&99u32.to_be_bytes())?;
    }
    let namespace = SledStore::open(dir.path())?.namespace("heights")?;
    let kept: Vec<_> = (10u32..15)
        .map(|h| (h.to_be_bytes().to_vec(), vec![1]))
        .collect();
    assert_eq!(namespace.iter_prefix(b"")?, kept);
    Ok(())
}

/// Set in a re-invoked test binary: run the child half of a crash test on this directory.
const CRASH_CHILD_DIR: &str = "XLN_STORE_CRASH_CHILD";

/// Re-runs this test binary for test `name` only, as a child using `dir`.
fn spawn_crash_child(name: &str, dir: &Path) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([&format!("store::tests::{name}"), "--exact", "--nocapture"])
        .env(CRASH_CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .spawn()
}

/// Reads the child's stdout until `count` lines end in `marker` (libtest may prefix the first).
/// The returned rest of its stdout must stay open until the child is killed, or its writes fail.
fn await_lines(
    child: &mut Child,
    marker: &str,
    count: usize,
) -> Result<Lines<BufReader<ChildStdout>>, String> {
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut seen = 0;
    while seen < count {
        let line = lines.next().ok_or("the child exited early")?;
        seen += usize::from(line.map_err(|e| e.to_string())?.ends_with(marker));
    }
    Ok(lines)
}

fn acknowledge(marker: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{marker}")?;
    stdout.flush()
}

#[test]
fn acknowledged_writes_survive_sigkill() -> TestResult {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
        let store = SledStore::open(Path::new(&dir))?;
        for i in 0..20u8 {
            store.write("monitors", "", &format!("key_{i}"), vec![i; 1000])?;
            acknowledge("written")?;
        }
        std::thread::sleep(Duration::from_secs(60)); // the parent kills us long before
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut child = spawn_crash_child("acknowledged_writes_survive_sigkill", dir.path())?;
    let awaited = await_lines(&mut child, "written", 20);
    let second_open = SledStore::open(dir.path());
    child.kill()?; // SIGKILL
    child.wait()?;
    drop(awaited?);
    assert!(
        is_locked(&second_open),
        "another process could open it: {second_open:?}"
    );
    let store = SledStore::open(dir.path())?;
    for i in 0..20u8 {
        assert_eq!(
            store.read("monitors", "", &format!("key_{i}"))?,
            vec![i; 1000]
        );
    }
    Ok(())
}

#[test]
fn namespace_batches_survive_sigkill_whole() -> TestResult {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
        let namespace = SledStore::open(Path::new(&dir))?.namespace("batches")?;
        let started = Instant::now();
        for generation in 0u32.. {
            namespace.put_many((0..10u8).map(|key| ([key], generation.to_be_bytes())))?;
            acknowledge("batch")?;
            if started.elapsed() > Duration::from_secs(60) {
                break; // the parent is gone; don't linger
            }
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut child = spawn_crash_child("namespace_batches_survive_sigkill_whole", dir.path())?;
    let awaited = await_lines(&mut child, "batch", 20);
    std::thread::sleep(Duration::from_millis(50)); // kill it in the middle of further batches
    child.kill()?;
    child.wait()?;
    drop(awaited?);
    let recovered = SledStore::open(dir.path())?
        .namespace("batches")?
        .iter_prefix(b"")?;
    let generations = recovered
        .iter()
        .map(|(_, value)| Ok(u32::from_be_bytes(value.as_slice().try_into()?)))
        .collect::<Result<Vec<_>, std::array::TryFromSliceError>>()?;
    assert_eq!(generations.len(), 10, "{generations:?}");
    assert!(
        generations.windows(2).all(|w| w[0] == w[1]),
        "half a batch: {generations:?}"
    );
    assert!(
        generations[0] >= 19,
        "acknowledged batches lost: {generations:?}"
    );
    Ok(())
}

#[test]
fn entries_written_all_at_once_are_read_back_and_bad_names_write_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    store.write_all_durably(&[
        ("", "", "manager", &[1; 5000]),
        ("monitors", "", "abc_0", &[2]),
        ("monitors", "", "def_1", &[3]),
    ])?;
    assert_eq!(store.read("", "", "manager")?, vec![1; 5000]);
    assert_eq!(store.read("monitors", "", "abc_0")?, vec![2]);
    assert_eq!(store.read("monitors", "", "def_1")?, vec![3]);
    let refused = store.write_all_durably(&[
        ("", "", "manager", &[9]),
        ("monitors", "", "not/a/key", &[9]),
    ]);
    assert_eq!(kind(refused), REFUSED);
    assert_eq!(store.read("", "", "manager")?, vec![1; 5000]);
    Ok(())
}

/// What the monitor writer relies on: a manager and the monitors written with it are found
/// together after a `kill -9`, never one without the others, and none acknowledged is lost.
#[test]
fn entries_written_all_at_once_survive_sigkill_whole() -> TestResult {
    const KEYS: [&str; 4] = ["abc_0", "def_1", "ghi_2", "jkl_3"];
    if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
        let store = SledStore::open(Path::new(&dir))?;
        let started = Instant::now();
        for generation in 0u32.. {
            // Large values, as monitors are, so that a write spans sled's I/O buffers.
            let value: Vec<u8> = generation.to_be_bytes().repeat(5_000);
            let mut entries: Vec<(&str, &str, &str, &[u8])> = vec![("", "", "manager", &value)];
            entries.extend(
                KEYS.iter()
                    .map(|key| ("monitors", "", *key, value.as_slice())),
            );
            store.write_all_durably(&entries)?;
            acknowledge("together")?;
            if started.elapsed() > Duration::from_secs(60) {
                break; // the parent is gone; don't linger
            }
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut child = spawn_crash_child(
        "entries_written_all_at_once_survive_sigkill_whole",
        dir.path(),
    )?;
    let awaited = await_lines(&mut child, "together", 20);
    std::thread::sleep(Duration::from_millis(50)); // kill it in the middle of further writes
    child.kill()?;
    child.wait()?;
    drop(awaited?);
    let store = SledStore::open(dir.path())?;
    let generation = |value: Vec<u8>| -> Result<u32, std::array::TryFromSliceError> {
        Ok(u32::from_be_bytes(
            value.get(..4).unwrap_or_default().try_into()?,
        ))
    };
    let manager = generation(store.read("", "", "manager")?)?;
    for key in KEYS {
        let monitor = generation(store.read("monitors", "", key)?)?;
        assert_eq!(monitor, manager, "monitor {key} found without its manager");
    }
    assert!(
        manager >= 19,
        "acknowledged writes lost: generation {manager}"
    );
    Ok(())
}

/// sled writes a value over a quarter of its 512 KiB segments (a channel manager with many HTLCs
/// in flight) to a file of its own under `blobs/`, which its flush never syncs: the store syncs
/// it before the write returns. If sled stops writing such blobs, this test says so, and
/// `disk_sync` can lose its blob part.
#[test]
fn a_value_stored_as_a_blob_file_is_synced_before_the_write_returns() -> TestResult {
    let dir = tempfile::tempdir()?;
    let large = vec![7; 300_000];
    {
        let store = SledStore::open(dir.path())?;
        store.write("", "", "manager", large.clone())?;
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<Result<_, _>>()?;
        assert!(
            !blobs.is_empty(),
            "sled kept a 300 KB value in its log file"
        );
        for blob in &blobs {
            assert!(
                store.durability.disk.has_synced_blob(blob),
                "the blob {blob:?} was not synced"
            );
        }
    }
    let store = SledStore::open(dir.path())?;
    assert_eq!(store.read("", "", "manager")?, large);
    Ok(())
}
