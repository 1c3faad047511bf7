//! Records the rustc version this crate is compiled with, so the plugin ABI header
//! can carry it and the host can compare it with its own.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{rustc} --version`: {e}"));
    assert!(
        output.status.success(),
        "`{rustc} --version` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version = String::from_utf8(output.stdout)
        .unwrap_or_else(|e| panic!("`{rustc} --version` printed non-UTF-8: {e}"));
    println!("cargo:rustc-env=EVOSPIKE_RUSTC_VERSION={}", version.trim());
    println!("cargo:rerun-if-env-changed=RUSTC");
}
