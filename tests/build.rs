//! Sets `cfg(qtumd)` when `QTUMD` names a qtumd binary, so the Qtum end-to-end suite runs then
//! and is listed as ignored, with the reason, otherwise.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qtumd)");
    println!("cargo::rerun-if-env-changed=QTUMD");
    if std::env::var_os("QTUMD").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=qtumd");
    }
}
