//! Small helpers for running external programs and reading their logs, shared by the modules that
//! build and drive Bitcoin Core.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::TestEnvError;

/// How many bytes from the end of a log file are read to find its last lines; enough for ~30 long
/// compiler lines, small enough not to read a multi-megabyte build log.
const TAIL_BYTES: u64 = 64 * 1024;

/// The command line of `command`, quoted so it can be pasted into a shell.
pub(crate) fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let is_plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c));
    if is_plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `command` to completion and returns its stdout with surrounding whitespace trimmed.
///
/// A non-zero exit becomes [`TestEnvError::CommandFailed`] with the command line and stderr.
pub(crate) fn run_for_stdout(command: &mut Command) -> Result<String, TestEnvError> {
    let output = command
        .output()
        .map_err(|e| TestEnvError::io(format!("starting `{}`", command_line(command)), e))?;
    if !output.status.success() {
        return Err(TestEnvError::CommandFailed {
            command: command_line(command),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The first executable called `name` in the directories of `$PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file we may execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    let Ok(metadata) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        metadata.is_file()
    }
}

/// The last `max_lines` lines of the file at `path`, or a note saying why it could not be read.
///
/// Used only to enrich error messages, so it never fails itself.
pub(crate) fn tail_of_file(path: &Path, max_lines: usize) -> String {
    match read_end_of_file(path) {
        Ok(text) => last_lines(&text, max_lines),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

fn read_end_of_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn last_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_only_words_that_need_it() {
        let mut command = Command::new("cmake");
        command.args(["-S", "/src dir", "-DX=1", "it's"]);
        assert_eq!(
            command_line(&command),
            r"cmake -S '/src dir' -DX=1 'it'\''s'"
        );
    }

    #[test]
    fn last_lines_keeps_only_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }

    #[test]
    fn failing_command_reports_its_stderr() {
        let result = run_for_stdout(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]));
        match result {
            Err(TestEnvError::CommandFailed { stderr, status, .. }) => {
                assert_eq!(stderr, "oops");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("expected CommandFailed, got {other:?}"),
        }
    }
}
