//! Gives the C shared library its SONAME, so that programs link against the ABI
//! major version (`libbitcask.so.0`) rather than the exact file.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // Only the cdylib: the rlib and staticlib have no SONAME to give.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbitcask.so.0");
    }
}
