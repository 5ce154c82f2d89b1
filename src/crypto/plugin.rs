//! age plugins: hardware-backed and other external keys (`age-plugin-yubikey`,
//! `age-plugin-tpm`, …) through the `age` crate's plugin support.
//!
//! A plugin recipient is `age1NAME1…` and a plugin identity `AGE-PLUGIN-NAME-1…`; both are
//! handled by the program `age-plugin-NAME` found on PATH, which age runs and talks to over
//! its stdin/stdout (the age plugin protocol, age-encryption.org/v1 plugins). castsync never
//! sees a plugin's key material: it hands the plugin the file's stanzas and gets the file key
//! back, or hands it a file key and gets stanzas.
//!
//! A plugin may ask the person for something: a PIN (a secret), a touch (a message), a
//! yes/no. [`TerminalCallbacks`] answers on the terminal (`/dev/tty`, so a value piped to
//! stdin is never taken for a PIN); without a terminal it answers "cannot ask", and the error
//! then says the plugin needs one. What the person types is never logged or echoed.
//!
//! A plugin is a program castsync did not write: each call to it runs on a thread of its own
//! and is given [`DEFAULT_TIMEOUT`] (or the run's `--timeout`, when shorter; encryption, in
//! commands without `--timeout`, is given [`DEFAULT_TIMEOUT`]). One that does not
//! answer in time, or breaks off the protocol (exits, prints something else), fails the file
//! with an error that names the plugin — not the file, which is fine. The age crate owns the
//! plugin's process, so one that hangs is left behind, and the plugin is not asked again
//! while that call is still out.
//!
//! Hardware keys are slow and may want a touch per use, so the file keys a plugin unwraps are
//! kept in memory for the life of the [`Identities`](super::Identities) (one run, or one
//! daemon), keyed by the file's stanzas: a file that is opened twice (a `--base` revision, a
//! daemon's next poll) costs one plugin call. Native keys need no cache.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use age::secrecy::SecretString;
use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use super::CryptoError;

/// How long one call to a plugin may take unless the run's `--timeout` is shorter: long
/// enough to find the key, type a PIN and touch it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The plugin's own words, or what it printed instead of the protocol, at most this long.
const MAX_REASON: usize = 1000;

/// The program that serves plugin `name`.
pub fn binary_name(name: &str) -> String {
    format!("age-plugin-{name}")
}

/// Answers a plugin's questions on the terminal.
#[derive(Clone)]
pub struct TerminalCallbacks {
    binary: String,
    /// Set when the plugin asked for input and there was no terminal to ask on.
    needed_terminal: Arc<AtomicBool>,
}

impl TerminalCallbacks {
    pub fn new(plugin: &str) -> TerminalCallbacks {
        TerminalCallbacks {
            binary: binary_name(plugin),
            needed_terminal: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the plugin asked for input that nobody could give (no terminal).
    pub fn needed_terminal(&self) -> bool {
        self.needed_terminal.load(Ordering::Relaxed)
    }

    fn no_terminal(&self, what: &str) {
        self.needed_terminal.store(true, Ordering::Relaxed);
        crate::say!(
            "castsync: {} asks for {what}, but there is no terminal to ask on: run castsync in a terminal to use this key",
            self.binary
        );
    }

    fn ask_line(&self, prompt: &str) -> Option<String> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let mut writer = &tty;
        write!(writer, "{prompt}").ok()?;
        writer.flush().ok()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line).ok()?;
        Some(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

impl age::Callbacks for TerminalCallbacks {
    fn display_message(&self, message: &str) {
        // A plugin's message is outside text: one line, bounded, control characters escaped.
        let bounded: String = message.chars().take(500).collect();
        crate::say!("{}: {}", self.binary, crate::escape::terminal(&bounded));
    }

    fn confirm(&self, message: &str, yes_string: &str, no_string: Option<&str>) -> Option<bool> {
        let no = no_string.unwrap_or("no");
        let t = |s: &str| crate::escape::terminal(s).into_owned();
        let answer = self.ask_line(&format!(
            "{}: {} [{}/{}] ",
            self.binary,
            t(message),
            t(yes_string),
            t(no)
        ));
        match answer {
            None => {
                self.no_terminal("a confirmation");
                None
            }
            Some(a) => {
                let a = a.trim();
                Some(a.eq_ignore_ascii_case(yes_string) || a.eq_ignore_ascii_case("y"))
            }
        }
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        let answer = self.ask_line(&format!(
            "{}: {} ",
            self.binary,
            crate::escape::terminal(description)
        ));
        if answer.is_none() {
            self.no_terminal("an answer");
        }
        answer
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        if std::fs::File::open("/dev/tty").is_err() {
            self.no_terminal("a secret (a PIN or passphrase)");
            return None;
        }
        // rpassword reads from /dev/tty with echo off.
        let prompt = format!(
            "{}: {}: ",
            self.binary,
            crate::escape::terminal(description)
        );
        match rpassword::prompt_password(prompt) {
            Ok(text) => Some(SecretString::from(text)),
            Err(_) => {
                self.no_terminal("a secret (a PIN or passphrase)");
                None
            }
        }
    }
}

/// All loaded identities of one plugin, as one age identity, with the unwrapped-file-key
/// cache.
pub struct PluginIdentities {
    pub name: String,
    /// Where its identities came from (for messages).
    pub sources: Vec<String>,
    /// The plugin, or the binary that is missing from PATH.
    plugin: Result<Arc<age::plugin::IdentityPluginV1<TerminalCallbacks>>, String>,
    callbacks: TerminalCallbacks,
    cache: Mutex<HashMap<[u8; 32], Zeroizing<[u8; 16]>>>,
    /// How long one call may take.
    timeout: Duration,
    /// How many calls that ran out of time are still out (the plugin never answered them).
    stuck: Arc<AtomicIsize>,
    /// Why the last call failed, when the plugin is to blame; taken by the decryption that
    /// reports it.
    failure: Mutex<Option<String>>,
}

impl PluginIdentities {
    /// Resolves plugin `name` on PATH for `identities` (all of that plugin).
    pub fn new(
        name: &str,
        identities: &[age::plugin::Identity],
        sources: Vec<String>,
        timeout: Duration,
    ) -> PluginIdentities {
        let callbacks = TerminalCallbacks::new(name);
        let plugin = age::plugin::IdentityPluginV1::new(name, identities, callbacks.clone())
            .map(Arc::new)
            .map_err(|_| binary_name(name));
        PluginIdentities {
            name: name.to_owned(),
            sources,
            plugin,
            callbacks,
            cache: Mutex::new(HashMap::new()),
            timeout,
            stuck: Arc::new(AtomicIsize::new(0)),
            failure: Mutex::new(None),
        }
    }

    /// Why the plugin failed the last file it was asked about (it did not answer in time, or
    /// broke off the protocol), once.
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok()?.take()
    }

    fn failed(&self, reason: String) -> Option<Result<FileKey, age::DecryptError>> {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(reason);
        }
        // Any error stops the decryption here; the caller reports the recorded reason.
        Some(Err(age::DecryptError::DecryptionFailed))
    }

    /// One call to the plugin, on a thread of its own, waited for at most `timeout`.
    fn ask(
        &self,
        plugin: &Arc<age::plugin::IdentityPluginV1<TerminalCallbacks>>,
        stanzas: &[Stanza],
    ) -> Option<Result<FileKey, age::DecryptError>> {
        if self.stuck.load(Ordering::SeqCst) > 0 {
            return self.failed(format!(
                "has not answered an earlier request (given {}s)",
                self.timeout.as_secs_f64()
            ));
        }
        const RUNNING: u8 = 0;
        const DONE: u8 = 1;
        const ABANDONED: u8 = 2;
        let (tx, rx) = std::sync::mpsc::channel();
        let state = Arc::new(AtomicU8::new(RUNNING));
        // Stanzas are public (tags, arguments and the wrapped file key), not secrets.
        let owned: Vec<Stanza> = stanzas
            .iter()
            .map(|s| Stanza {
                tag: s.tag.clone(),
                args: s.args.clone(),
                body: s.body.clone(),
            })
            .collect();
        let plugin = Arc::clone(plugin);
        let (call_state, stuck) = (state.clone(), self.stuck.clone());
        let call = std::thread::Builder::new()
            .name(format!("age-plugin-{}", self.name))
            .spawn(move || {
                let answer = age::Identity::unwrap_stanzas(&*plugin, &owned);
                if call_state.swap(DONE, Ordering::SeqCst) == ABANDONED {
                    stuck.fetch_sub(1, Ordering::SeqCst);
                }
                let _ = tx.send(answer);
            });
        if call.is_err() {
            return self.failed("could not be asked (no thread to run it on)".to_owned());
        }
        let answer = match rx.recv_timeout(self.timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if state
                    .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err() =>
            {
                // It answered just as the time ran out.
                rx.recv()
                    .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
            }
            other => other,
        };
        match answer {
            Ok(Some(Err(e))) if !matches!(e, age::DecryptError::Plugin(_)) => {
                // Not the plugin's own error message but a broken conversation: it exited or
                // printed something other than the protocol.
                let said = match &e {
                    age::DecryptError::Io(io) => io.kind().to_string(),
                    // age's first line; the rest advises AGEDEBUG, which prints key material.
                    // Its messages wrap names in Unicode isolates, dropped here.
                    other => other
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .filter(|c| !matches!(c, '\u{2068}' | '\u{2069}'))
                        .take(MAX_REASON)
                        .collect(),
                };
                self.failed(format!(
                    "broke off the age plugin protocol: it exited or printed something else ({})",
                    crate::escape::terminal(said.trim())
                ))
            }
            Ok(answer) => answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.stuck.fetch_add(1, Ordering::SeqCst);
                self.failed(format!(
                    "did not answer within {}s",
                    self.timeout.as_secs_f64()
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.failed("stopped without an answer".to_owned())
            }
        }
    }

    /// The binary that is not on PATH, when it is not.
    pub fn missing_binary(&self) -> Option<&str> {
        self.plugin.as_ref().err().map(String::as_str)
    }

    pub fn needed_terminal(&self) -> bool {
        self.callbacks.needed_terminal()
    }
}

/// The cache key of a file: SHA-256 over its stanzas (tags, arguments, bodies). A stanza
/// wraps the file key to a fresh ephemeral key, so two files never share one.
fn stanzas_digest(stanzas: &[Stanza]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for stanza in stanzas {
        for part in std::iter::once(stanza.tag.as_bytes())
            .chain(stanza.args.iter().map(String::as_bytes))
            .chain(std::iter::once(stanza.body.as_slice()))
        {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(b"\n");
    }
    h.finalize().into()
}

impl age::Identity for PluginIdentities {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let plugin = self.plugin.as_ref().ok()?;
        let digest = stanzas_digest(stanzas);
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&digest).map(|k| **k));
        if let Some(bytes) = cached {
            return Some(Ok(FileKey::new(Box::new(bytes))));
        }
        let answer = self.ask(plugin, stanzas)?;
        if let (Ok(key), Ok(mut cache)) = (&answer, self.cache.lock()) {
            cache.insert(digest, Zeroizing::new(*key.expose_secret()));
        }
        Some(answer)
    }
}

/// The age recipients for plugin recipients, one per plugin (each plugin wraps the file key
/// for all of its recipients in one call), each call bounded by `timeout`.
pub fn recipients(
    plugin_recipients: &[&age::plugin::Recipient],
    timeout: Duration,
) -> Result<Vec<Box<dyn age::Recipient>>, CryptoError> {
    let mut names: Vec<&str> = plugin_recipients.iter().map(|r| r.plugin()).collect();
    names.sort_unstable();
    names.dedup();
    let all: Vec<age::plugin::Recipient> = plugin_recipients.iter().map(|r| (*r).clone()).collect();
    let mut out: Vec<Box<dyn age::Recipient>> = Vec::new();
    for name in names {
        let plugin =
            age::plugin::RecipientPluginV1::new(name, &all, &[], TerminalCallbacks::new(name))
                .map_err(|_| CryptoError::MissingPlugin {
                    binary: binary_name(name),
                    needed_for: format!("recipient age1{name}1… in castsync.yaml"),
                })?;
        out.push(Box::new(Bounded {
            name: name.to_owned(),
            plugin: Arc::new(plugin),
            timeout,
        }));
    }
    Ok(out)
}

/// A plugin recipient whose call runs on a thread of its own and is waited for at most
/// `timeout`: a plugin that never answers (waiting for a device that is not there, say)
/// fails the encryption, naming itself, instead of holding `set` or `rekey` forever. As with
/// identities, the age crate owns the plugin's process, so one that hangs is left behind.
struct Bounded {
    name: String,
    plugin: Arc<age::plugin::RecipientPluginV1<TerminalCallbacks>>,
    timeout: Duration,
}

impl age::Recipient for Bounded {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError> {
        // The thread gets its own copy of the key (zeroized when it is dropped).
        let key = FileKey::new(Box::new(*file_key.expose_secret()));
        let plugin = Arc::clone(&self.plugin);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("age-plugin-{}", self.name))
            .spawn(move || {
                let _ = tx.send(age::Recipient::wrap_file_key(&*plugin, &key));
            })
            .map_err(age::EncryptError::Io)?;
        let binary = binary_name(&self.name);
        match rx.recv_timeout(self.timeout) {
            Ok(answer) => answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(age::EncryptError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "{binary} did not answer within {}s",
                        self.timeout.as_secs_f64()
                    ),
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(age::EncryptError::Io(
                std::io::Error::other(format!("{binary} stopped without an answer")),
            )),
        }
    }
}
