//! Build script: with the `isal` feature, compiles the small C shim over ISA-L's inflate
//! (`src/logs/isal.c`) and links the system's ISA-L. Without it, there is nothing to do.

fn main() {
    println!("cargo:rerun-if-changed=src/logs/isal.c");
    #[cfg(feature = "isal")]
    {
        if let Err(e) = cc::Build::new()
            .file("src/logs/isal.c")
            .try_compile("keyproof_isal")
        {
            panic!(
                "the `isal` feature needs ISA-L's headers and library \
                 (Debian: apt-get install libisal-dev): {e}"
            );
        }
        println!("cargo:rustc-link-lib=isal");
    }
}
