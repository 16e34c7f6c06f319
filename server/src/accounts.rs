//! Accounts: names protected by a password.
//!
//! # File format
//!
//! `<data-dir>/accounts.txt` is UTF-8 text, one account per line: the name, one space, and
//! the Argon2id hash in the PHC string format (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
//! which holds its own random salt and parameters. No password is ever stored or logged.
//! Loading is forgiving, like `registry.txt`: a blank, malformed or duplicate line is skipped
//! with one warning. A stored hash is checked with its own parameters, up to a bound on its
//! memory ([`MAX_MEMORY_KIB`]): a line asking for more matches no password.
//!
//! # Durability
//!
//! A new account is written the way the registry is: the whole file to `accounts.txt.tmp`,
//! fsync, rename over `accounts.txt`, fsync the directory; SIGNUP answers only after that.
//!
//! # Hashing
//!
//! Argon2id is slow on purpose (tens of milliseconds and 19 MiB per hash), so hashes run on
//! [`hashes_at_once`] hashing threads of their own, at the lowest CPU priority the system has
//! (`SCHED_IDLE` on Linux): a storm of AUTH attempts waits in line for one, never takes the
//! executor thread from chat, and never makes the executor wait out a hash's scheduler slice
//! when a message arrives (a hash at normal priority held it for up to about 3 ms). A check against an
//! unknown account still hashes (against a dummy hash), so the answer's timing does not tell
//! whether the account exists; the comparison itself is constant-time (`password-hash`).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

use protocol::Name;

use crate::registry::sync_dir;
use crate::rt;
use crate::sync;
use crate::worker::{self, Priority};

/// Name of the accounts file inside the data directory.
const FILE_NAME: &str = "accounts.txt";
/// Name of the temporary file a change is written to before the rename.
const TMP_NAME: &str = "accounts.txt.tmp";
/// Most Argon2 hashes computed at once (each takes a hashing thread and 19 MiB): one core
/// fewer than the machine has (at least one, at most four), so chat keeps a core of its own
/// while an AUTH storm hashes.
pub fn hashes_at_once() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, 4)
}

/// One hash to compute, on a hashing thread, in that thread's Argon2 memory.
type Job = worker::Job<Memory>;

/// Most memory (KiB) a stored hash may ask a check to use: a hash whose parameters ask for
/// more (a damaged or planted line in `accounts.txt` or the cluster's Redis) matches nothing,
/// rather than making a hashing thread allocate, and keep, whatever it says. Eight times
/// the default (19 MiB).
const MAX_MEMORY_KIB: u32 = 8 * Params::DEFAULT_M_COST;
/// How long a hashing thread keeps its Argon2 memory once it has nothing to hash.
const KEEP_MEMORY: Duration = Duration::from_secs(10);

/// A hashing thread's Argon2 working memory (19 MiB with the default parameters), kept from
/// one hash to the next while hashes keep coming: allocating it for each hash cost about
/// 5,000 page faults (every page zeroed anew) and an unmap per hash.
#[derive(Default)]
pub(crate) struct Memory(Vec<Block>);

impl Memory {
    /// Room for `params`, reusing what is there.
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }
}

/// Starts `n` hashing threads at the lowest CPU priority the system has (`SCHED_IDLE` on
/// Linux, the idle priority elsewhere): they take only CPU time nothing else wants, so the
/// executor never waits out a hash's scheduler slice when a message arrives during an AUTH
/// storm. They end when the returned sender is dropped.
fn start_hashers(n: usize) -> io::Result<async_channel::Sender<Job>> {
    let (jobs, queue) = async_channel::bounded::<Job>(n);
    for i in 0..n {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("hasher-{i}"))
            .spawn(move || {
                worker::lower_priority(Priority::Idle);
                let mut memory = Memory::default();
                loop {
                    // While hashes keep coming, the memory stays; after a quiet spell it
                    // goes back to the system until the next one.
                    let next = match rt::wait_here(KEEP_MEMORY, queue.recv()) {
                        Some(next) => next,
                        None => {
                            memory = Memory::default();
                            queue.recv_blocking()
                        }
                    };
                    match next {
                        Ok(job) => job(&mut memory),
                        Err(_) => break,
                    }
                }
            })?;
    }
    Ok(jobs)
}

/// Why an account could not be created.
#[derive(Debug)]
pub(crate) enum SignupError {
    /// The name already has an account.
    Exists,
    /// Hashing or the file failed.
    Io(io::Error),
    /// The cluster's Redis cannot be reached: nothing was created; try again later.
    Unavailable,
}

/// The accounts, mirrored in `<dir>/accounts.txt`.
pub struct Accounts {
    /// Directory holding the file (and the temp file; it is what we fsync).
    dir: PathBuf,
    /// Name → PHC hash string.
    hashes: RwLock<HashMap<String, Arc<str>>>,
    /// Serialises file rewrites (held on a blocking thread).
    file: Arc<Mutex<()>>,
    /// The hashing threads' queue (as long as there are threads, no deeper).
    hashers: async_channel::Sender<Job>,
    /// A hash of a random password, checked against when the account is unknown.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A fresh random salt.
fn salt() -> io::Result<SaltString> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| io::Error::other("no system randomness"))?;
    SaltString::encode_b64(&bytes).map_err(|e| io::Error::other(e.to_string()))
}

/// Argon2id (the crate's default: Argon2id, version 19, m=19 MiB, t=2, p=1) of `password`,
/// as a PHC string, computed in `memory`.
fn hash(password: &str, memory: &mut Memory) -> io::Result<String> {
    let bad = |e: argon2::Error| io::Error::other(e.to_string());
    let salt = salt()?;
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut raw_salt)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let params = Params::default();
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::default(), Version::default(), params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            raw_salt,
            &mut output,
            memory.blocks(&params),
        )
        .map_err(bad)?;
    phc_string(&salt, &output)
}

/// The PHC string of an Argon2id hash with the default parameters.
fn phc_string(salt: &SaltString, output: &[u8]) -> io::Result<String> {
    let bad = |e: argon2::password_hash::Error| io::Error::other(e.to_string());
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&Params::default()).map_err(bad)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(output).map_err(bad)?),
    };
    Ok(phc.to_string())
}

/// A PHC string with the parameters [`hash`] uses, a random salt and a random output: checking
/// a password against it costs exactly what a real account's check costs, and nothing ever
/// matches it. Made without hashing (a hash at start would cost 19 MiB of memory and tens of
/// milliseconds for nothing).
fn dummy_hash() -> io::Result<String> {
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    SystemRandom::new()
        .fill(&mut output)
        .map_err(|_| io::Error::other("no system randomness"))?;
    phc_string(&salt()?, &output)
}

/// Whether `password` matches the PHC string `stored` (its own algorithm, version,
/// parameters and salt; computed in `memory`; the outputs compared in constant time).
fn verify(password: &str, stored: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut raw_salt = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut raw_salt) else {
        return false;
    };
    let mut output = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password.as_bytes(),
        raw_salt,
        &mut output,
        memory.blocks(&params),
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&output).is_ok_and(|output| output == expected)
}

impl Accounts {
    /// Loads `<dir>/accounts.txt` (missing = none). Returns warnings, one per bad line.
    pub fn load(dir: &Path) -> io::Result<(Accounts, Vec<String>)> {
        let bytes = match fs::read(dir.join(FILE_NAME)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut hashes = HashMap::new();
        let mut warnings = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let Some((name, phc)) = line.split_once(' ') else {
                warnings.push(format!("line {line_no}: no hash; ignored"));
                continue;
            };
            if Name::new(name).is_err() || PasswordHash::new(phc).is_err() {
                warnings.push(format!("line {line_no}: malformed; ignored"));
                continue;
            }
            match hashes.entry(fold(name)) {
                Entry::Occupied(_) => warnings.push(format!(
                    "line {line_no}: duplicate account {name:?} ignored"
                )),
                Entry::Vacant(slot) => {
                    slot.insert(Arc::from(phc));
                }
            }
        }
        let hashers = start_hashers(hashes_at_once())?;
        let dummy = dummy_hash()?;
        let accounts = Accounts {
            dir: dir.to_path_buf(),
            hashes: RwLock::new(hashes),
            file: Arc::new(Mutex::new(())),
            hashers,
            dummy: Arc::from(dummy),
        };
        Ok((accounts, warnings))
    }

    /// How many accounts exist.
    pub fn len(&self) -> usize {
        sync::read(&self.hashes).len()
    }

    /// Whether there are none.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` has an account.
    pub fn exists(&self, name: &str) -> bool {
        sync::read(&self.hashes).contains_key(&fold(name))
    }

    /// Runs `work` on a hashing thread (waiting for one to be free), off the executor and
    /// below everything else's CPU priority.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> io::Result<T> {
        worker::run_on(&self.hashers, "the hashing threads are gone", work).await
    }

    /// Whether `password` is `name`'s. An unknown account costs the same hash as a known one.
    pub async fn check(&self, name: &str, password: &str) -> bool {
        let known_hash = sync::read(&self.hashes).get(&fold(name)).cloned();
        self.matches(password, known_hash).await
    }

    /// Whether `password` matches the PHC string `stored` (hashed on a hashing thread); with
    /// no hash (an unknown account) it hashes against the dummy, and is `false`.
    pub(crate) async fn matches(&self, password: &str, stored: Option<Arc<str>>) -> bool {
        let (stored, known) = match stored {
            Some(stored) => (stored, true),
            None => (self.dummy.clone(), false),
        };
        let password = password.to_owned();
        let matched = self
            .hashing(move |memory| verify(&password, &stored, memory))
            .await
            .unwrap_or(false);
        known && matched
    }

    /// The Argon2id PHC string of `password` with a fresh salt (on a hashing thread): what
    /// an account stores, here or in the cluster's Redis.
    pub(crate) async fn hash_password(&self, password: &str) -> io::Result<String> {
        let password = password.to_owned();
        self.hashing(move |memory| hash(&password, memory))
            .await
            .and_then(|hashed| hashed)
    }

    /// Creates `name`'s account with `password`, durably, before returning.
    pub(crate) async fn create(&self, name: &str, password: &str) -> Result<(), SignupError> {
        if self.exists(name) {
            return Err(SignupError::Exists);
        }
        let phc = self
            .hash_password(password)
            .await
            .map_err(SignupError::Io)?;
        let text = {
            let mut hashes = sync::write(&self.hashes);
            if hashes.contains_key(&fold(name)) {
                return Err(SignupError::Exists);
            }
            hashes.insert(fold(name), Arc::from(phc));
            render(&hashes)
        };
        let (dir, file) = (self.dir.clone(), self.file.clone());
        let written = rt::blocking(move || {
            let _guard = sync::lock(&file);
            persist(&dir, &text)
        })
        .await;
        if let Err(e) = written {
            sync::write(&self.hashes).remove(&fold(name));
            return Err(SignupError::Io(e));
        }
        Ok(())
    }
}

/// The key an account is kept under: names are unique without regard to case (the hub's rule,
/// and IRC's), so `Alice` can neither sign up beside `alice` nor pass for her.
pub(crate) fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The file's text: one `name hash` line per account, sorted.
fn render(hashes: &HashMap<String, Arc<str>>) -> String {
    let mut names: Vec<&String> = hashes.keys().collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        text.push_str(name);
        text.push(' ');
        text.push_str(&hashes[name]);
        text.push('\n');
    }
    text
}

/// Writes `text` atomically: temp file, fsync, rename, fsync the directory.
fn persist(dir: &Path, text: &str) -> io::Result<()> {
    let tmp = dir.join(TMP_NAME);
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(FILE_NAME))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("chat-acct-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        path
    }

    fn hash(password: &str) -> String {
        super::hash(password, &mut Memory::default()).unwrap()
    }

    fn verify(password: &str, stored: &str) -> bool {
        super::verify(password, stored, &mut Memory::default())
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_and_memory_is_reused() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt().unwrap())
            .unwrap()
            .to_string();
        let mut memory = Memory::default();
        assert!(super::verify("correct horse", &theirs, &mut memory));
        let kept = memory.0.as_ptr();
        assert!(!super::verify("correct horsE", &theirs, &mut memory));
        let ours = super::hash("correct horse", &mut memory).unwrap();
        assert_eq!(memory.0.as_ptr(), kept, "the same memory, hash after hash");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horsE", &parsed)
            .is_err());
        // Other parameters in a stored hash are honoured (a cheaper one here).
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let cheap = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt().unwrap())
            .unwrap()
            .to_string();
        assert!(super::verify("pw", &cheap, &mut memory));
        assert!(!super::verify("px", &cheap, &mut memory));
        assert!(!super::verify(
            "pw",
            "$argon2id$v=19$m=8,t=1,p=1$bad",
            &mut memory
        ));
        // A stored hash that asks for more memory than the bound matches nothing, and
        // nothing that large is allocated.
        let huge = cheap.replace("m=8192", &format!("m={}", MAX_MEMORY_KIB + 1));
        assert_ne!(huge, cheap);
        assert!(!super::verify("pw", &huge, &mut memory));
        assert!(memory.0.len() <= Params::DEFAULT_M_COST as usize);
    }

    #[test]
    fn the_dummy_costs_what_a_real_check_costs_and_matches_nothing() {
        let real = hash("correct horse");
        let (dummy, again) = (dummy_hash().unwrap(), dummy_hash().unwrap());
        let (real, parsed) = (
            PasswordHash::new(&real).unwrap(),
            PasswordHash::new(&dummy).unwrap(),
        );
        // Same algorithm, version, memory, passes, lanes and output length: the same work.
        assert_eq!(parsed.algorithm, real.algorithm);
        assert_eq!(parsed.version, real.version);
        assert_eq!(parsed.params, real.params);
        assert_eq!(parsed.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert_ne!(dummy, again, "salt and output are random");
        assert!(!verify("", &dummy));
        assert!(!verify("correct horse", &dummy));
    }

    #[test]
    fn signup_check_and_reload() {
        let dir = temp_dir("reload");
        async_std::task::block_on(async {
            let (accounts, warnings) = Accounts::load(&dir).unwrap();
            assert!(warnings.is_empty() && accounts.is_empty());
            accounts.create("alice", "correct horse").await.unwrap();
            assert!(matches!(
                accounts.create("alice", "another one").await,
                Err(SignupError::Exists)
            ));
            assert!(accounts.check("alice", "correct horse").await);
            assert!(!accounts.check("alice", "correct horsE").await);
            assert!(!accounts.check("bob", "correct horse").await, "unknown");
            let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
            assert!(text.starts_with("alice $argon2id$"), "{text}");
            assert!(!text.contains("correct horse"), "never the password");
            assert!(!dir.join(TMP_NAME).exists());
            let (again, warnings) = Accounts::load(&dir).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            assert!(again.exists("alice"));
            assert!(again.check("alice", "correct horse").await);
        });
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn same_password_different_salt() {
        let (a, b) = (hash("same password"), hash("same password"));
        assert_ne!(a, b, "a random salt per hash");
        assert!(a.starts_with("$argon2id$v=19$"));
        assert!(verify("same password", &a) && verify("same password", &b));
    }

    #[test]
    fn bad_lines_are_warnings() {
        let dir = temp_dir("bad");
        let good = hash("password1");
        let text = format!("alice {good}\n\nbob\ncarol notahash\nalice {good}\nb@d {good}\n");
        fs::write(dir.join(FILE_NAME), text).unwrap();
        let (accounts, warnings) = Accounts::load(&dir).unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
