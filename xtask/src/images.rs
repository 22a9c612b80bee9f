//! `cargo xtask images`: the local container images the cluster runs.
//!
//! Four images are built from scratch, without any registry:
//!
//! * `coxswain/pause:0.1`: the pod sandbox, `/pause` (src/bin/pause.rs);
//! * `coxswain/web:0.1`: the demo web server on port 80, `/web`
//!   (src/bin/web.rs), standing in for nginx;
//! * `coxswain/busybox:0.1`: Debian's static busybox as `/bin/busybox`,
//!   with one symlink per applet (`sh`, `sleep`, `wget`, ...), default
//!   command `sh`;
//! * `coxswain/coxswain:0.1`: the `coxswain` binary that `cargo xtask run`
//!   uses (`target/debug/coxswain`, built first), as `/coxswain`, with the
//!   shared libraries and the dynamic loader that `ldd` lists for it, each
//!   at its own path: the control plane's static pods run it.
//!
//! The two programs are compiled as static executables with `rustc`
//! directly. They use only the standard library, and going through cargo
//! would first build every dependency of the root package (tokio, bollard,
//! k8s-openapi, ...) a second time, statically and in release, for nothing.
//! The `coxswain` binary, on the contrary, is the one cargo builds anyway:
//! linked against glibc, it brings its libraries along rather than being
//! built a second time, statically.
//!
//! Each image carries the hash of its inputs (the Dockerfile and every file
//! of its build context) in the label `io.coxswain.inputs`; an image whose
//! label matches is not rebuilt. Images are built by `docker build` from a
//! `FROM scratch` Dockerfile, with the legacy builder when the docker CLI has
//! no buildx plugin. Nothing is ever pulled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::{apt, docker, exec, run, workspace};

/// Options of `cargo xtask images`.
#[derive(clap::Args)]
pub struct Options {
    /// Rebuild every image even when its inputs did not change.
    #[arg(long)]
    force: bool,
}

/// The label holding the hash of an image's inputs.
const INPUTS_LABEL: &str = "io.coxswain.inputs";
/// Where Debian's busybox-static package puts the executable.
const BUSYBOX: &str = "/bin/busybox";
/// The Rust edition of the workspace, which the two programs are written in.
const EDITION: &str = "2024";

/// Runs `cargo xtask images`.
pub fn main(options: Options) -> Result<()> {
    ensure(options.force)
}

/// Makes sure Docker answers and every image is built from current inputs.
pub fn ensure(force: bool) -> Result<()> {
    docker::ensure_engine()?;
    apt::ensure(&["busybox-static"])?;

    let pause = build_static_program("coxswain-pause", "src/bin/pause.rs")?;
    let web = build_static_program("coxswain-web", "src/bin/web.rs")?;
    let coxswain = run::build_coxswain(false)?;
    let images = [
        pause_image(pause),
        web_image(web),
        busybox_image()?,
        coxswain_image(&coxswain)?,
    ];

    let legacy_builder = exec::probe(Command::new("docker").args(["buildx", "version"])).is_none();
    for image in &images {
        build_image(image, force, legacy_builder)?;
    }
    Ok(())
}

/// One image: its tag, its Dockerfile and the files of its build context.
struct Image {
    tag: &'static str,
    dockerfile: &'static str,
    entries: Vec<Entry>,
}

/// One file of a build context, at `path` relative to the context.
struct Entry {
    path: String,
    source: Source,
}

enum Source {
    /// A copy of this file.
    File(PathBuf),
    /// A symbolic link pointing at this target.
    Symlink(String),
}

fn pause_image(program: PathBuf) -> Image {
    Image {
        tag: "coxswain/pause:0.1",
        dockerfile: "FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n",
        entries: vec![Entry {
            path: "pause".into(),
            source: Source::File(program),
        }],
    }
}

fn web_image(program: PathBuf) -> Image {
    Image {
        tag: "coxswain/web:0.1",
        dockerfile: "FROM scratch\nCOPY web /web\nEXPOSE 80\nENTRYPOINT [\"/web\"]\n",
        entries: vec![Entry {
            path: "web".into(),
            source: Source::File(program),
        }],
    }
}

fn busybox_image() -> Result<Image> {
    let mut list = Command::new(BUSYBOX);
    list.arg("--list");
    let applets = exec::probe(&mut list).context("`busybox --list` failed")?;

    let mut entries = vec![Entry {
        path: "bin/busybox".into(),
        source: Source::File(BUSYBOX.into()),
    }];
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        entries.push(Entry {
            path: format!("bin/{applet}"),
            source: Source::Symlink("busybox".into()),
        });
    }
    Ok(Image {
        tag: "coxswain/busybox:0.1",
        dockerfile: "FROM scratch\n\
                     COPY bin/ /bin/\n\
                     ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
                     CMD [\"sh\"]\n",
        entries,
    })
}

/// The tag of the image the control plane's static pods run.
pub const COXSWAIN_IMAGE: &str = "coxswain/coxswain:0.1";

fn coxswain_image(binary: &Path) -> Result<Image> {
    let mut entries = vec![Entry {
        path: "rootfs/coxswain".into(),
        source: Source::File(binary.to_owned()),
    }];
    for library in shared_libraries(binary)? {
        let inside = library.strip_prefix("/").unwrap_or(&library);
        entries.push(Entry {
            path: format!("rootfs/{}", inside.display()),
            source: Source::File(library),
        });
    }
    Ok(Image {
        tag: COXSWAIN_IMAGE,
        dockerfile: "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/coxswain\"]\n",
        entries,
    })
}

/// The absolute paths of the shared libraries and the dynamic loader that
/// `ldd` lists for `binary` (the kernel's vDSO has no file and is left out).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let mut ldd = Command::new("ldd");
    ldd.arg(binary);
    let listed =
        exec::probe(&mut ldd).with_context(|| format!("`ldd {}` failed", binary.display()))?;
    Ok(parse_ldd(&listed))
}

/// Reads `ldd` output: `name => /path (0x...)` for a library, `/path
/// (0x...)` for the loader; `statically linked` gives nothing.
fn parse_ldd(listed: &str) -> Vec<PathBuf> {
    listed
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, resolved)) => resolved.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Compiles a std-only program as a static, stripped release executable in
/// `target/static/`, unless the executable is newer than its source.
fn build_static_program(name: &str, source: &str) -> Result<PathBuf> {
    let source = workspace::root().join(source);
    let out_dir = workspace::target_dir().join("static");
    let output = out_dir.join(name);
    if modified(&output).is_some_and(|built| Some(built) >= modified(&source)) {
        return Ok(output);
    }
    std::fs::create_dir_all(&out_dir)?;

    let host = host_triple()?;
    let mut rustc = Command::new("rustc");
    rustc
        .args(["--edition", EDITION, "--crate-type", "bin"])
        .args(["--crate-name", &name.replace('-', "_")])
        .args([
            "-C",
            "opt-level=3",
            "-C",
            "strip=symbols",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["--target", &host])
        .arg("-o")
        .arg(&output)
        .arg(&source);
    exec::run(&mut rustc)?;
    Ok(output)
}

/// The target triple rustc compiles for by default.
fn host_triple() -> Result<String> {
    let mut version = Command::new("rustc");
    version.arg("-vV");
    let info = exec::probe(&mut version).context("`rustc -vV` failed")?;
    info.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host triple")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Builds `image` unless an image with the same tag and inputs exists.
fn build_image(image: &Image, force: bool, legacy_builder: bool) -> Result<()> {
    let hash = inputs_hash(image)?;
    let existing = inspect(
        image.tag,
        &format!("{{{{index .Config.Labels \"{INPUTS_LABEL}\"}}}}"),
    );
    if !force && existing.as_deref() == Some(hash.as_str()) {
        eprintln!("xtask: {} is up to date", image.tag);
        return Ok(());
    }
    let previous_id = inspect(image.tag, "{{.Id}}");

    let context = write_context(image)?;
    let mut build = Command::new("docker");
    if legacy_builder {
        build.env("DOCKER_BUILDKIT", "0");
    }
    build
        .args([
            "build",
            "--quiet",
            "--label",
            &format!("{INPUTS_LABEL}={hash}"),
        ])
        .args(["--tag", image.tag])
        .arg(&context);
    // The legacy builder's deprecation notice is noise here: keep stderr
    // for failures only.
    let id = exec::capture(&mut build)?;
    eprintln!("xtask: built {} ({})", image.tag, id.trim());

    // The image this one replaces is now untagged; remove it unless a
    // container still uses it.
    if let Some(previous_id) = previous_id.filter(|previous| previous != id.trim()) {
        exec::probe(Command::new("docker").args(["image", "rm", &previous_id]));
    }
    std::fs::remove_dir_all(&context).ok();
    Ok(())
}

/// Reads one field of a local image, or `None` when there is no such image.
fn inspect(tag: &str, format: &str) -> Option<String> {
    let mut command = Command::new("docker");
    command.args(["image", "inspect", "--format", format, tag]);
    exec::probe(&mut command).map(|out| out.trim().to_owned())
}

/// Writes the build context of `image` to a fresh directory under target/.
fn write_context(image: &Image) -> Result<PathBuf> {
    let name = image.tag.split([':', '/']).nth(1).unwrap_or(image.tag);
    let dir = workspace::target_dir().join("xtask-images").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("Dockerfile"), image.dockerfile)?;

    for entry in &image.entries {
        let path = dir.join(&entry.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match &entry.source {
            Source::File(source) => {
                std::fs::copy(source, &path)
                    .with_context(|| format!("cannot copy {}", source.display()))?;
            }
            Source::Symlink(target) => std::os::unix::fs::symlink(target, &path)?,
        }
    }
    Ok(dir)
}

/// A hash of everything an image is built from, as 16 hex digits.
fn inputs_hash(image: &Image) -> Result<String> {
    let mut hash = Fnv1a::new();
    hash.field(image.tag.as_bytes());
    hash.field(image.dockerfile.as_bytes());
    for entry in &image.entries {
        hash.field(entry.path.as_bytes());
        match &entry.source {
            Source::File(source) => {
                let bytes = std::fs::read(source)
                    .with_context(|| format!("cannot read {}", source.display()))?;
                hash.field(b"file");
                hash.field(&bytes);
            }
            Source::Symlink(target) => {
                hash.field(b"symlink");
                hash.field(target.as_bytes());
            }
        }
    }
    Ok(format!("{:016x}", hash.0))
}

/// 64-bit FNV-1a: tiny, stable across Rust releases, and plenty to notice
/// that a build input changed (this is no defence against tampering).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds one length-prefixed field, so that fields cannot run together.
    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(dockerfile: &'static str, link: &str) -> Image {
        Image {
            tag: "coxswain/test:latest",
            dockerfile,
            entries: vec![Entry {
                path: "bin/sh".into(),
                source: Source::Symlink(link.into()),
            }],
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_hash() {
        let first = inputs_hash(&image_with("FROM scratch\n", "busybox")).unwrap();
        let second = inputs_hash(&image_with("FROM scratch\n", "busybox")).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 16);
    }

    #[test]
    fn a_changed_dockerfile_or_file_changes_the_hash() {
        let base = inputs_hash(&image_with("FROM scratch\n", "busybox")).unwrap();
        assert_ne!(
            base,
            inputs_hash(&image_with("FROM scratch\nCMD [\"sh\"]\n", "busybox")).unwrap()
        );
        assert_ne!(
            base,
            inputs_hash(&image_with("FROM scratch\n", "toybox")).unwrap()
        );
    }

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader_but_not_the_vdso() {
        let listed = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                      \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f53)\n\
                      \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f53)\n\
                      \t/lib64/ld-linux-x86-64.so.2 (0x00007f53)\n";
        assert_eq!(
            parse_ldd(listed),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }

    #[test]
    fn fnv1a_matches_its_published_test_vector() {
        let mut hash = Fnv1a::new();
        hash.write(b"a");
        assert_eq!(hash.0, 0xaf63_dc4c_8601_ec8c);
    }
}
