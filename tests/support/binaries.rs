//! The workspace's binaries, found next to the running test executable (and built if needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::lock;

/// Path of a workspace binary (`chat-server`, `chat-client`) in the target directory of the
/// running test executable; builds it once per test process if it is missing (as after a
/// plain `cargo test --workspace`, which does not build other packages' binaries) or older
/// than the sources it is built from (so a test never runs yesterday's server).
///
/// On Windows an existing `.exe` is used as it is, with a warning if it looks stale: the
/// Windows check runs these tests under Wine, where the `cargo` that started them is a Linux
/// program the test cannot run, and it builds every binary (`cargo build --target ...`)
/// before it tests.
pub fn bin(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if cfg!(windows) && path.exists() {
        if is_stale(&path) {
            static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
            let mut warned = lock(&WARNED);
            if !warned.iter().any(|w| w == name) {
                eprintln!(
                    "warning: {} is older than its sources; run `cargo build --workspace \
                     --bins` first",
                    path.display()
                );
                warned.push(name.to_string());
            }
        }
    } else if is_stale(&path) {
        // Once per binary per test process (a no-op for cargo when nothing changed).
        static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let mut built = lock(&BUILT);
        if !built.iter().any(|b| b == name) {
            build_binary(&dir, name);
            built.push(name.to_string());
        }
    }
    assert!(
        path.exists(),
        "{} does not exist even after building",
        path.display()
    );
    path
}

/// Whether `binary` is missing or older than a source file of the crates it is built from.
fn is_stale(binary: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = match binary.file_stem().and_then(|s| s.to_str()) {
        Some("chat-client") => ["protocol", "client"],
        _ => ["protocol", "server"],
    };
    let mut pending: Vec<PathBuf> = crates
        .iter()
        .flat_map(|c| [root.join(c).join("src"), root.join(c).join("Cargo.toml")])
        .chain([root.join("Cargo.lock")])
        .collect();
    while let Some(p) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.modified().is_ok_and(|m| m > built) {
            return true;
        }
    }
    false
}

/// `target/<profile>`: the test executable lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// `cargo build -p NAME --bin NAME` (each binary is its package's namesake) into the target
/// directory the tests run from; one package at a time, so a half-edited client does not
/// stop the server's tests.
fn build_binary(profile_dir: &Path, name: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", name, "--bin", name, "--manifest-path"])
        .arg(&manifest);
    if let (Some(profile), Some(target_dir)) = (profile_dir.file_name(), profile_dir.parent()) {
        cmd.arg("--target-dir").arg(target_dir);
        match profile.to_str() {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
    }
    let status = cmd
        .status()
        .expect("cargo can be run to build the binaries");
    assert!(status.success(), "building {name} failed: {status}");
}
