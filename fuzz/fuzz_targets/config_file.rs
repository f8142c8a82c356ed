//! Any text as `xln.toml`; and, split at NUL bytes, as xlnd's command line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = xln_fuzz::daemon::config_file(&text);
    let args: Vec<String> = text.split('\0').map(str::to_owned).collect();
    let _ = xln_fuzz::daemon::command_line(&args);
});
