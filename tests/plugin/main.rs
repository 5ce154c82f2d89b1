//! `age-plugin-castsynctest`: an age plugin for castsync's tests, written with the
//! `age-plugin` crate so that castsync's plugin support is exercised over the real plugin
//! protocol, without hardware.
//!
//! NOT SECURE, ON PURPOSE: its recipient is its identity (16 random bytes), and a file key is
//! "wrapped" by XOR with them. It exists to check the plumbing (PATH lookup, stanzas,
//! messages, PIN prompts, how many times a plugin is asked), never to protect anything.
//!
//! Without arguments it prints a new identity in age's format (`# recipient: age1…` above an
//! `AGE-PLUGIN-CASTSYNCTEST-1…` line). Environment, for tests:
//! - `CASTSYNC_TEST_PLUGIN_LOG=FILE`: appends `wrap` or `unwrap` per call that did work;
//! - `CASTSYNC_TEST_PLUGIN_PIN=PIN`: unwrapping asks for a PIN (a secret request) and
//!   refuses a wrong one;
//! - it always sends the message "touch the castsynctest key" when unwrapping.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read as _, Write as _};

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret as _;
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{Callbacks, PluginHandler, print_new_identity, run_state_machine};

const NAME: &str = "castsynctest";
const TAG: &str = "castsynctest";
const KEY_BYTES: usize = 16;

fn log(what: &str) {
    if let Ok(path) = std::env::var("CASTSYNC_TEST_PLUGIN_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        // One write per line: plugins run in parallel, and a line written in pieces could
        // interleave with another process's.
        let _ = f.write_all(format!("{what}\n").as_bytes());
    }
}

/// The first 4 bytes as hex: which key a stanza is for.
fn tag_of(key: &[u8]) -> String {
    key.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Recipients;
    type IdentityV1 = Identities;

    fn recipient_v1(self) -> io::Result<Recipients> {
        Ok(Recipients(Vec::new()))
    }

    fn identity_v1(self) -> io::Result<Identities> {
        Ok(Identities(Vec::new()))
    }
}

struct Recipients(Vec<Vec<u8>>);

impl RecipientPluginV1 for Recipients {
    fn add_recipient(
        &mut self,
        index: usize,
        plugin_name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        if plugin_name != NAME || bytes.len() != KEY_BYTES {
            return Err(recipient::Error::Recipient {
                index,
                message: "not a castsynctest recipient".to_owned(),
            });
        }
        self.0.push(bytes.to_vec());
        Ok(())
    }

    fn add_identity(
        &mut self,
        index: usize,
        _plugin_name: &str,
        _bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        Err(recipient::Error::Identity {
            index,
            message: "castsynctest encrypts to recipients only".to_owned(),
        })
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _callbacks: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        log("wrap");
        Ok(Ok(file_keys
            .iter()
            .map(|file_key| {
                self.0
                    .iter()
                    .map(|key| Stanza {
                        tag: TAG.to_owned(),
                        args: vec![tag_of(key)],
                        body: xor(file_key.expose_secret(), key),
                    })
                    .collect()
            })
            .collect()))
    }
}

struct Identities(Vec<Vec<u8>>);

impl IdentityPluginV1 for Identities {
    fn add_identity(
        &mut self,
        index: usize,
        plugin_name: &str,
        bytes: &[u8],
    ) -> Result<(), identity::Error> {
        if plugin_name != NAME || bytes.len() != KEY_BYTES {
            return Err(identity::Error::Identity {
                index,
                message: "not a castsynctest identity".to_owned(),
            });
        }
        self.0.push(bytes.to_vec());
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (file, stanzas) in files.into_iter().enumerate() {
            let found = stanzas.iter().find_map(|s| {
                let key = self.0.iter().find(|k| {
                    s.tag == TAG && s.args.first() == Some(&tag_of(k)) && s.body.len() == KEY_BYTES
                })?;
                Some(xor(&s.body, key))
            });
            let Some(bytes) = found else { continue };
            log("unwrap");
            if let Ok(expected) = std::env::var("CASTSYNC_TEST_PLUGIN_PIN") {
                let given = match callbacks.request_secret("PIN for the castsynctest key")? {
                    Ok(pin) => pin,
                    Err(_) => {
                        out.insert(
                            file,
                            Err(vec![identity::Error::Identity {
                                index: 0,
                                message: "no PIN was given".to_owned(),
                            }]),
                        );
                        continue;
                    }
                };
                if given.expose_secret() != expected {
                    out.insert(
                        file,
                        Err(vec![identity::Error::Identity {
                            index: 0,
                            message: "wrong PIN".to_owned(),
                        }]),
                    );
                    continue;
                }
            }
            let _ = callbacks.message("touch the castsynctest key")?;
            let key = FileKey::init_with_mut(|k| k.copy_from_slice(&bytes));
            out.insert(file, Ok(key));
        }
        Ok(out)
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next() {
        Some(arg) if arg.starts_with("--age-plugin") => {
            let machine = match arg.strip_prefix("--age-plugin=") {
                Some(m) => m.to_owned(),
                None => args.next().unwrap_or_default(),
            };
            run_state_machine(&machine, Handler)
        }
        Some(_) => Err(io::Error::other("usage: age-plugin-castsynctest")),
        None => {
            let mut key = [0u8; KEY_BYTES];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
            print_new_identity(NAME, &key, &key);
            Ok(())
        }
    }
}
