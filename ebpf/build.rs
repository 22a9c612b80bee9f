//! Compiles the C probes under `probes/` with clang into `$OUT_DIR/trace.bpf.o`.
//!
//! Flags: `-O2` (the BPF stack is 512 bytes; unoptimised code overflows
//! it), `-g` (BTF, which CO-RE relocations need), `-target bpf`. The
//! helper headers come from Debian's libbpf-dev. When clang or those
//! headers are missing, the build still succeeds: it writes an empty object
//! and the loader reports that the probes were not built. A probe that does
//! not compile fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "probes/trace.bpf.c";
const HEADERS: &[&str] = &["probes/kernel.h", "probes/event.h"];

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    for header in HEADERS {
        println!("cargo:rerun-if-changed={header}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("trace.bpf.o");

    match compile(&object) {
        Ok(()) => {}
        Err(reason) => {
            println!("cargo:warning=eBPF probes not built: {reason}");
            std::fs::write(&object, b"").expect("writing the empty probe object");
        }
    }
}

fn compile(object: &Path) -> Result<(), String> {
    let include = ["/usr/include", "/usr/local/include"]
        .into_iter()
        .find(|dir| Path::new(dir).join("bpf/bpf_helpers.h").exists())
        .ok_or("libbpf headers (bpf/bpf_helpers.h) not found")?;
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let output = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            "-Wall",
        ])
        .arg(format!("-I{include}"))
        .arg("-c")
        .arg(SOURCE)
        .arg("-o")
        .arg(object)
        .output()
        .map_err(|e| format!("running {clang}: {e}"))?;
    if !output.status.success() {
        panic!(
            "{clang} could not compile {SOURCE}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
