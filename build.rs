//! ferrun's ELF entry on x86_64 is `ferrun_entry` (src/main.rs), which may re-execute the
//! command from a read-only image before glibc's `_start` runs.
fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_POINTER_WIDTH") == "64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
    {
        println!("cargo:rustc-link-arg-bin=ferrun=-Wl,-e,ferrun_entry");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
