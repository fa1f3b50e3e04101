//! ferrun's ELF entry on x86_64 is `ferrun_entry` (src/main.rs), which may re-execute the
//! command from a read-only image before glibc's `_start` runs.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        println!("cargo:rustc-link-arg-bin=ferrun=-Wl,-e,ferrun_entry");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
