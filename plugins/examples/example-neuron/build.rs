//! Test-fixture variants of the example plugin, chosen by the environment variable
//! `EVOSPIKE_EXAMPLE_FIXTURE` (unset in normal builds). They are not cargo features
//! on purpose: `--all-features` must never turn the example into a broken plugin.
//!
//! * `abi-mismatch` — export a header claiming the next ABI major version;
//! * `panic` — panic inside `execute`, and inside the layer's `step` on NaN input;
//! * `variant-b` — a "rebuilt" library: same name and version, different behaviour.

fn main() {
    const VAR: &str = "EVOSPIKE_EXAMPLE_FIXTURE";
    println!("cargo::rerun-if-env-changed={VAR}");
    for cfg in ["fixture_abi_mismatch", "fixture_panic", "fixture_variant_b"] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    match std::env::var(VAR).as_deref() {
        Err(_) | Ok("") => {}
        Ok("abi-mismatch") => println!("cargo::rustc-cfg=fixture_abi_mismatch"),
        Ok("panic") => println!("cargo::rustc-cfg=fixture_panic"),
        Ok("variant-b") => println!("cargo::rustc-cfg=fixture_variant_b"),
        Ok(other) => {
            panic!("{VAR}={other:?} is not a fixture variant (abi-mismatch, panic, variant-b)")
        }
    }
}
