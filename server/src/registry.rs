//! The seed-000 machine registry: which machines may send structured broadcasts.
//!
//! # File format
//!
//! `<data-dir>/registry.txt` is plain UTF-8 text, one machine name per line, each line ending
//! in LF, in the order the machines registered (seed 000's format, unchanged).
//!
//! Beside it, `<data-dir>/owners.txt` says whom each machine belongs to, one machine per
//! line: its name, one space, and `account:<name>` (registered by a connection that proved
//! an account) or `ip:<address>` (registered by a connection without one), as in
//! `camelot ip:10.0.0.7`. A registered machine missing there (a registry from before owners)
//! is unowned, and the next connection to register it claims it; a line for a machine that
//! is not registered is ignored. People may edit it by hand, so loading is
//! forgiving: a CR before the LF is dropped, and a blank line, a duplicate or an invalid name
//! (see [`protocol::Name`]) is skipped with one warning each, never an error. A missing file
//! is an empty registry.
//!
//! # Durability
//!
//! Every change rewrites the whole file (it is small) the classic atomic way: write
//! `registry.txt.tmp`, fsync it, rename it over `registry.txt`, then fsync the directory so
//! the rename itself survives a crash (Unix; on Windows `std::fs::rename` replaces the file
//! with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)`, which NTFS journals, and there is no
//! directory handle to fsync). A crash at any point leaves either the old or the new file,
//! never a half-written one; a `.tmp` left behind by a crash is ignored and overwritten by
//! the next change. `owners.txt` is written the same way, before `registry.txt`: a crash
//! between the two leaves at worst an owner line for a machine not (or no longer)
//! registered, which is ignored. If a change cannot be persisted, the in-memory registry is rolled back
//! and the error returned, so memory never claims what the disk does not hold.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use protocol::Name;

/// Name of the registry file inside the data directory.
const FILE_NAME: &str = "registry.txt";
/// Name of the temporary file a change is written to before the rename.
const TMP_NAME: &str = "registry.txt.tmp";
/// Name of the owners file inside the data directory.
const OWNERS_NAME: &str = "owners.txt";
/// Temporary name of the owners file.
const OWNERS_TMP_NAME: &str = "owners.txt.tmp";

/// Who a machine belongs to (issue: nobody else speaks for it or takes it over).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The account of the connection that registered it.
    Account(String),
    /// The peer address of a connection without an account that registered it.
    Ip(IpAddr),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Account(name) => write!(f, "account:{name}"),
            Owner::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

impl Owner {
    /// Parses `account:<name>` or `ip:<address>`.
    fn parse(s: &str) -> Option<Owner> {
        match s.split_once(':')? {
            ("account", name) => Name::new(name)
                .ok()
                .map(|_| Owner::Account(crate::accounts::fold(name))),
            ("ip", ip) => ip.parse().ok().map(Owner::Ip),
            _ => None,
        }
    }
}

/// The registered machines, mirrored in `<dir>/registry.txt`.
#[derive(Debug)]
pub struct Registry {
    /// Directory holding the file: the temp file goes there too, and it is what we fsync.
    dir: PathBuf,
    /// Registered machine names in registration order, so the file stays stable and readable.
    names: Vec<String>,
    /// Each machine's owner, beside `names` (`None`: an entry from before owners).
    owners: Vec<Option<Owner>>,
}

impl Registry {
    /// Loads `<dir>/registry.txt` (missing file = empty). Returns warnings, one per bad line
    /// (blank lines, duplicates, invalid names per `protocol::Name::new`), each starting
    /// `line N:`, for the caller to log; bad content is never an error, only I/O errors are.
    pub fn load(dir: &Path) -> io::Result<(Registry, Vec<String>)> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // Invalid UTF-8 becomes U+FFFD, which no valid name contains: that line gets a warning.
        let text = String::from_utf8_lossy(&bytes);
        let mut names: Vec<String> = Vec::new();
        let mut owners: Vec<Option<Owner>> = Vec::new();
        let mut warnings = Vec::new();
        let body = text.strip_suffix('\n').unwrap_or(&text);
        if !body.is_empty() {
            for (index, raw) in body.split('\n').enumerate() {
                let line_no = index + 1;
                let line = raw.strip_suffix('\r').unwrap_or(raw);
                if line.is_empty() {
                    warnings.push(format!("line {line_no}: blank line ignored"));
                    continue;
                }
                match Name::new(line) {
                    Err(e) => warnings.push(format!(
                        "line {line_no}: invalid machine name {line:?} ignored: {e}"
                    )),
                    Ok(_) if names.iter().any(|n| n == line) => warnings.push(format!(
                        "line {line_no}: duplicate machine name {line:?} ignored"
                    )),
                    Ok(name) => {
                        names.push(name.as_str().to_owned());
                        owners.push(None);
                    }
                }
            }
        }
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            names,
            owners,
        };
        registry.load_owners(&mut warnings)?;
        Ok((registry, warnings))
    }

    /// Reads `owners.txt` into `owners` (missing file: every machine unowned).
    fn load_owners(&mut self, warnings: &mut Vec<String>) -> io::Result<()> {
        let bytes = match fs::read(self.dir.join(OWNERS_NAME)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (index, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let parsed = line
                .split_once(' ')
                .and_then(|(machine, owner)| Some((machine, Owner::parse(owner)?)));
            match parsed {
                Some((machine, owner)) => {
                    if let Some(i) = self.names.iter().position(|n| n == machine) {
                        self.owners[i] = Some(owner);
                    }
                }
                None if line.is_empty() => {}
                None => warnings.push(format!("owners.txt line {}: ignored", index + 1)),
            }
        }
        Ok(())
    }

    /// Whether `machine` is registered (exact, case-sensitive match, like every command).
    pub fn contains(&self, machine: &str) -> bool {
        self.names.iter().any(|n| n == machine)
    }

    /// Adds (unowned) and persists; Ok(false) if it was already there (nothing written).
    #[cfg(test)]
    pub fn insert(&mut self, machine: &Name<'_>) -> io::Result<bool> {
        self.insert_owned(machine, None)
    }

    /// Adds with its owner and persists; Ok(false) if it was already there (nothing written).
    pub fn insert_owned(&mut self, machine: &Name<'_>, owner: Option<Owner>) -> io::Result<bool> {
        if self.contains(machine.as_str()) {
            return Ok(false);
        }
        self.names.push(machine.as_str().to_owned());
        self.owners.push(owner);
        if let Err(e) = self.persist() {
            self.names.pop();
            self.owners.pop();
            return Err(e);
        }
        Ok(true)
    }

    /// `machine`'s owner: `None` if it is not registered, `Some(None)` if it has no owner.
    pub fn owner(&self, machine: &str) -> Option<Option<&Owner>> {
        let index = self.names.iter().position(|n| n == machine)?;
        Some(self.owners.get(index).and_then(Option::as_ref))
    }

    /// Gives an unowned (older format) machine its owner, and persists.
    pub fn claim(&mut self, machine: &str, owner: Owner) -> io::Result<()> {
        let Some(index) = self.names.iter().position(|n| n == machine) else {
            return Ok(());
        };
        let before = self.owners[index].replace(owner);
        if let Err(e) = self.persist() {
            self.owners[index] = before;
            return Err(e);
        }
        Ok(())
    }

    /// Removes and persists; Ok(false) if it was not there.
    pub fn remove(&mut self, machine: &str) -> io::Result<bool> {
        let Some(index) = self.names.iter().position(|n| n == machine) else {
            return Ok(false);
        };
        let removed = self.names.remove(index);
        let owner = self.owners.remove(index);
        if let Err(e) = self.persist() {
            self.names.insert(index, removed);
            self.owners.insert(index, owner);
            return Err(e);
        }
        Ok(true)
    }

    /// The registered machines in registration order, for broadcasts and listings.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Writes both files atomically, owners first: temp file, fsync, rename, fsync the
    /// directory.
    fn persist(&self) -> io::Result<()> {
        let mut owners = String::new();
        let mut text = String::with_capacity(self.names.iter().map(|n| n.len() + 1).sum());
        for (name, owner) in self.names.iter().zip(&self.owners) {
            text.push_str(name);
            text.push('\n');
            if let Some(owner) = owner {
                owners.push_str(&format!("{name} {owner}\n"));
            }
        }
        write_atomic(&self.dir, OWNERS_TMP_NAME, OWNERS_NAME, &owners)?;
        write_atomic(&self.dir, TMP_NAME, FILE_NAME, &text)
    }
}

/// Writes `text` to `dir/name` through `dir/tmp`: write, fsync, rename, fsync the directory.
fn write_atomic(dir: &Path, tmp: &str, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(tmp);
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a rename inside `dir` durable: on Unix a directory entry only survives a crash
/// once the directory itself is fsynced.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to fsync it; NTFS journals the rename itself.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        /// Makes a fresh, unique directory.
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("chat-test-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            if let Err(e) = fs::create_dir_all(&path) {
                panic!("cannot create {}: {e}", path.display());
            }
            TempDir(path)
        }

        /// The directory.
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn name(s: &str) -> Name<'_> {
        match Name::new(s) {
            Ok(n) => n,
            Err(e) => panic!("test name {s:?} is invalid: {e}"),
        }
    }

    fn load(dir: &Path) -> (Registry, Vec<String>) {
        match Registry::load(dir) {
            Ok(loaded) => loaded,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    fn names(reg: &Registry) -> Vec<&str> {
        reg.names().collect()
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = TempDir::new("reg-missing");
        let (reg, warnings) = load(dir.path());
        assert!(names(&reg).is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn round_trip_across_load() -> io::Result<()> {
        let dir = TempDir::new("reg-roundtrip");
        let (mut reg, _) = load(dir.path());
        assert!(reg.insert(&name("camelot"))?);
        assert!(reg.insert(&name("merlin"))?);
        assert!(reg.insert(&name("avalon"))?);
        assert!(reg.remove("merlin")?);
        assert!(reg.contains("camelot"));
        assert!(!reg.contains("merlin"));

        let (again, warnings) = load(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(names(&again), ["camelot", "avalon"]);
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME))?,
            "camelot\navalon\n"
        );
        assert!(!dir.path().join(TMP_NAME).exists());
        Ok(())
    }

    #[test]
    fn hand_edited_file_loads_good_names_with_one_warning_per_bad_line() -> io::Result<()> {
        let dir = TempDir::new("reg-handedit");
        let text = "camelot\r\n\r\nmerlin\n\ncamelot\nbad name\nbad!\nmerlin\r\n\nlast";
        fs::write(dir.path().join(FILE_NAME), text)?;
        let (reg, warnings) = load(dir.path());
        assert_eq!(names(&reg), ["camelot", "merlin", "last"]);
        // Lines 2 and 4 and 9 blank, 5 and 8 duplicates, 6 and 7 invalid.
        assert_eq!(warnings.len(), 7, "{warnings:?}");
        for line in [2, 4, 5, 6, 7, 8, 9] {
            let tag = format!("line {line}:");
            assert_eq!(
                warnings.iter().filter(|w| w.contains(&tag)).count(),
                1,
                "{tag} in {warnings:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn invalid_utf8_is_a_warning_not_an_error() -> io::Result<()> {
        let dir = TempDir::new("reg-utf8");
        fs::write(dir.path().join(FILE_NAME), b"ok\n\xff\xfe\n")?;
        let (reg, warnings) = load(dir.path());
        assert_eq!(names(&reg), ["ok"]);
        assert_eq!(warnings.len(), 1);
        Ok(())
    }

    #[test]
    fn insert_twice_is_false_and_writes_nothing() -> io::Result<()> {
        let dir = TempDir::new("reg-twice");
        let (mut reg, _) = load(dir.path());
        assert!(reg.insert(&name("camelot"))?);
        fs::remove_file(dir.path().join(FILE_NAME))?;
        assert!(!reg.insert(&name("camelot"))?);
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing rewritten");
        assert_eq!(names(&reg), ["camelot"]);
        Ok(())
    }

    #[test]
    fn remove_missing_is_false() -> io::Result<()> {
        let dir = TempDir::new("reg-remove");
        let (mut reg, _) = load(dir.path());
        assert!(!reg.remove("nobody")?);
        assert!(reg.insert(&name("camelot"))?);
        assert!(reg.remove("camelot")?);
        assert!(!reg.remove("camelot")?);
        assert_eq!(fs::read_to_string(dir.path().join(FILE_NAME))?, "");
        Ok(())
    }

    #[test]
    fn leftover_tmp_is_ignored_and_overwritten() -> io::Result<()> {
        let dir = TempDir::new("reg-tmp");
        fs::write(dir.path().join(FILE_NAME), "camelot\n")?;
        fs::write(dir.path().join(TMP_NAME), "half-writ")?;
        let (mut reg, warnings) = load(dir.path());
        assert!(warnings.is_empty());
        assert_eq!(names(&reg), ["camelot"]);
        assert!(reg.insert(&name("merlin"))?);
        assert!(!dir.path().join(TMP_NAME).exists());
        let (again, _) = load(dir.path());
        assert_eq!(names(&again), ["camelot", "merlin"]);
        Ok(())
    }

    #[test]
    fn owners_round_trip_and_old_format_loads() -> io::Result<()> {
        let dir = TempDir::new("reg-owners");
        fs::write(dir.path().join(FILE_NAME), "camelot\nmerlin\n")?;
        fs::write(
            dir.path().join(OWNERS_NAME),
            "gone ip:10.0.0.1\nmerlin nobody:x\n",
        )?;
        let (mut reg, warnings) = load(dir.path());
        assert_eq!(names(&reg), ["camelot", "merlin"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(reg.owner("camelot"), Some(None));
        assert_eq!(reg.owner("nowhere"), None);
        let ip = Owner::Ip("127.0.0.2".parse().map_err(io::Error::other)?);
        reg.claim("camelot", ip.clone())?;
        let alice = Owner::Account("alice".into());
        assert!(reg.insert_owned(&name("avalon"), Some(alice.clone()))?);
        let v6 = Owner::Ip("::1".parse().map_err(io::Error::other)?);
        assert!(reg.insert_owned(&name("tintagel"), Some(v6.clone()))?);
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME))?,
            "camelot\nmerlin\navalon\ntintagel\n",
            "registry.txt keeps seed 000's format"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(OWNERS_NAME))?,
            "camelot ip:127.0.0.2\navalon account:alice\ntintagel ip:::1\n"
        );
        let (again, warnings) = load(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(again.owner("camelot"), Some(Some(&ip)));
        assert_eq!(again.owner("merlin"), Some(None));
        assert_eq!(again.owner("avalon"), Some(Some(&alice)));
        assert_eq!(again.owner("tintagel"), Some(Some(&v6)));
        Ok(())
    }

    #[test]
    fn failed_persist_rolls_back() -> io::Result<()> {
        let dir = TempDir::new("reg-rollback");
        let (mut reg, _) = load(dir.path());
        assert!(reg.insert(&name("camelot"))?);
        // A directory where the temp file should go makes File::create fail on every OS.
        fs::create_dir(dir.path().join(TMP_NAME))?;
        assert!(reg.insert(&name("merlin")).is_err());
        assert!(!reg.contains("merlin"));
        assert!(reg.remove("camelot").is_err());
        assert!(reg.contains("camelot"));
        fs::remove_dir(dir.path().join(TMP_NAME))?;
        let (again, _) = load(dir.path());
        assert_eq!(names(&again), ["camelot"]);
        Ok(())
    }
}
