//! Links the `sluice` binary with packed relative relocations (`DT_RELR`) where the C library
//! loads them.
//!
//! The binary is position-independent, so every pointer in its read-only data (vtables, string
//! tables, static slices) is a relative relocation the loader applies at start. As `RELA`
//! records (24 bytes each) they were 2.2 MiB of the file, read at every start and resident for
//! the life of the process: a tenth of `sluice edge`'s idle RSS. Packed, the same relocations
//! take a few KiB (BENCHMARKS.md, "4. Idle memory").
//!
//! glibc loads `DT_RELR` from 2.36 on, and the linker then marks the binary as needing it, so it
//! is asked for only when building for the machine that builds (whose glibc the binary links
//! against anyway) and that machine's glibc is 2.36 or newer. Anywhere else the binary is linked
//! as before.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("TARGET") == var("HOST");
    if native
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && glibc_loads_relr()
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the build machine's glibc is 2.36 or newer (`getconf GNU_LIBC_VERSION` prints
/// `glibc 2.36`); `false` when it cannot tell.
fn glibc_loads_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
