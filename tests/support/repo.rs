//! A secrets repository in a temp dir, built through castsync's own crypto (real age files).

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use secrecy::ExposeSecret;

use super::{Command, castsync};

pub struct SecretsRepo {
    _tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub root: PathBuf,
    pub key_file: PathBuf,
    pub recipient: String,
}

impl SecretsRepo {
    /// An empty repo with a fresh identity (written to HOME/key.txt, never committed) and a
    /// castsync.yaml whose recipients hold it, plus `extra_config` lines.
    pub fn new(extra_config: &str) -> SecretsRepo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let root = tmp.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(root.join("agents")).unwrap();
        let (secret, recipient) = castsync::crypto::generate_identity();
        let key_file = home.join("key.txt");
        std::fs::write(&key_file, secret.expose_secret()).unwrap();
        set_private(&key_file);
        let repo = SecretsRepo {
            _tmp: tmp,
            home,
            root,
            key_file,
            recipient,
        };
        repo.config(extra_config);
        repo
    }

    /// Rewrites castsync.yaml: our recipient plus `extra` YAML lines.
    pub fn config(&self, extra: &str) {
        let text = format!("version: 1\nrecipients:\n  - {}\n{extra}\n", self.recipient);
        std::fs::write(self.root.join("castsync.yaml"), text).unwrap();
    }

    /// Encrypts `plaintext` as agents/AGENT/secrets.yaml.age.
    pub fn raw_manifest(&self, agent: &str, plaintext: &str) {
        let dir = self.root.join("agents").join(agent);
        std::fs::create_dir_all(&dir).unwrap();
        let r = castsync::crypto::parse_recipient(&self.recipient).unwrap();
        let ct = castsync::crypto::encrypt(plaintext.as_bytes(), &[r]).unwrap();
        std::fs::write(dir.join("secrets.yaml.age"), ct).unwrap();
    }

    /// A valid manifest for `agent` with `secrets`, and an .env.example declaring them.
    pub fn agent(&self, agent: &str, secrets: &[(&str, &str)]) {
        let mut yaml = format!("agent: {agent}\nsecrets:\n");
        let mut schema = String::new();
        for (k, v) in secrets {
            yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
            schema.push_str(&format!("{k}=placeholder-for-{}\n", k.to_lowercase()));
        }
        if secrets.is_empty() {
            yaml = format!("agent: {agent}\nsecrets: {{}}\n");
        }
        self.raw_manifest(agent, &yaml);
        self.schema(agent, &schema);
    }

    /// Encrypts `plaintext` as shared/GROUP/secrets.yaml.age (to our recipient).
    pub fn raw_group(&self, group: &str, plaintext: &str) {
        let dir = self.root.join("shared").join(group);
        std::fs::create_dir_all(&dir).unwrap();
        let r = castsync::crypto::parse_recipient(&self.recipient).unwrap();
        let ct = castsync::crypto::encrypt(plaintext.as_bytes(), &[r]).unwrap();
        std::fs::write(dir.join("secrets.yaml.age"), ct).unwrap();
    }

    /// A valid shared group manifest with `secrets`.
    pub fn group(&self, group: &str, secrets: &[(&str, &str)]) {
        let mut yaml = format!("group: {group}\nsecrets:\n");
        for (k, v) in secrets {
            yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
        }
        if secrets.is_empty() {
            yaml = format!("group: {group}\nsecrets: {{}}\n");
        }
        self.raw_group(group, &yaml);
    }

    /// An agent with its own `secrets`, a `uses:` block (`uses` is its YAML value, e.g.
    /// `[openai]` or `{openai: [OPENAI_API_KEY]}`), and an .env.example listing `schema_keys`.
    pub fn agent_using(
        &self,
        agent: &str,
        uses: &str,
        secrets: &[(&str, &str)],
        schema_keys: &[&str],
    ) {
        let mut yaml = format!("agent: {agent}\nuses: {uses}\nsecrets:\n");
        for (k, v) in secrets {
            yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
        }
        if secrets.is_empty() {
            yaml = format!("agent: {agent}\nuses: {uses}\nsecrets: {{}}\n");
        }
        self.raw_manifest(agent, &yaml);
        let schema: String = schema_keys
            .iter()
            .map(|k| format!("{k}=placeholder-for-{}\n", k.to_lowercase()))
            .collect();
        self.schema(agent, &schema);
    }

    pub fn schema(&self, agent: &str, text: &str) {
        let dir = self.root.join("agents").join(agent);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env.example"), text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `program` (git, castsync, pre-commit…) as a user of this repository runs it in `dir`:
    /// castsync on PATH, the identity in `CASTSYNC_AGE_KEY_FILE`, no `-i` anywhere, git's
    /// author set and no system git config.
    pub fn as_user(&self, program: &str, dir: &Path) -> Command {
        let path = format!(
            "{}:{}",
            super::bin().parent().unwrap().display(),
            std::env::var("PATH").unwrap()
        );
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .env_remove("CASTSYNC_AGE_KEY")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("PATH", &path)
            .env("CASTSYNC_AGE_KEY_FILE", &self.key_file)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("NO_COLOR", "1");
        cmd
    }

    /// `castsync -C ROOT -i KEY …` with a hermetic environment.
    pub fn cmd(&self) -> Command {
        let mut c = castsync(&self.home);
        c.arg("-C").arg(&self.root).arg("-i").arg(&self.key_file);
        c
    }

    /// A [`super::Test`] of `castsync -C ROOT -i KEY …` on this repository.
    pub fn test(&self) -> super::Test {
        super::Test::in_repo(self)
    }

    /// A [`super::Test`] of `castsync … reconcile --api-url URL` with an API key for the
    /// emulator.
    pub fn test_reconcile(&self, emulator_url: &str) -> super::Test {
        self.test().env("CASTARI_API_KEY", "cast_test").args([
            "reconcile",
            "--api-url",
            emulator_url,
        ])
    }

    /// `castsync … reconcile --api-url URL` with an API key for the emulator.
    pub fn reconcile(&self, emulator_url: &str) -> Command {
        let mut c = self.cmd();
        c.env("CASTARI_API_KEY", "cast_test")
            .arg("reconcile")
            .args(["--api-url", emulator_url]);
        c
    }

    /// `castsync state export` of the repository's state: the JSON document the state file
    /// held before the state moved into a database.
    pub fn state_export(&self) -> serde_json::Value {
        self.test().args(["state", "export"]).run().success().json()
    }

    /// Removes the repository's state (the database, its companions, the stub beside it):
    /// as if it was never written.
    pub fn forget_state(&self) {
        for file in ["state.db", "state.db-wal", "state.db-shm", "state.json"] {
            let path = self.path(&format!(".castsync/{file}"));
            if let Err(e) = std::fs::remove_file(&path) {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}", path.display());
            }
        }
    }

    /// Replaces the repository's state by `doc` as a state file of an earlier castsync
    /// (`.castsync/state.json`, no database): the next run migrates it.
    pub fn replace_state(&self, doc: &serde_json::Value) {
        self.forget_state();
        let path = self.path(".castsync/state.json");
        std::fs::write(&path, format!("{doc}\n")).unwrap();
        set_private(&path);
    }

    /// Runs git in the repo (for --ref / --base tests).
    pub fn git(&self, args: &[&str]) -> String {
        let out = StdCommand::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&self.root)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Commits everything with author and committer dates `time` (Unix seconds), as if it
    /// were made then; returns the commit id.
    pub fn commit_all_at(&self, message: &str, time: i64) -> String {
        if !self.root.join(".git").exists() {
            self.git(&["init", "-q"]);
        }
        self.git(&["add", "-A"]);
        let date = format!("@{time} +0000");
        let out = StdCommand::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "commit.gpgsign=false"])
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .current_dir(&self.root)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn commit_all(&self, message: &str) -> String {
        if !self.root.join(".git").exists() {
            self.git(&["init", "-q"]);
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
