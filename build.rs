//! Build script: with the `isal` feature (on by default), compiles the small C shim over ISA-L's
//! inflate (`src/logs/isal.c`) and links the system's ISA-L, when its headers are installed,
//! and then sets `cfg(keyproof_isal)`. Where they are not, it warns and log files are inflated
//! with libdeflate, so that a machine without ISA-L still builds keyproof.

fn main() {
    println!("cargo:rerun-if-changed=src/logs/isal.c");
    println!("cargo:rustc-check-cfg=cfg(keyproof_isal)");
    #[cfg(feature = "isal")]
    {
        let built = cc::Build::new()
            .file("src/logs/isal.c")
            .cargo_warnings(false)
            .try_compile("keyproof_isal");
        match built {
            Ok(()) => {
                println!("cargo:rustc-link-lib=isal");
                println!("cargo:rustc-cfg=keyproof_isal");
            }
            Err(_) => println!(
                "cargo:warning=ISA-L is not installed (Debian: libisal-dev), so CloudTrail log \
                 files will be inflated with libdeflate, about 8% slower; after installing it, \
                 run `cargo clean -p keyproof` and build again to use it"
            ),
        }
    }
}
