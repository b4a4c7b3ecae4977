//! Support for the packaging tests: builds the .deb and tarball with `cross/package.sh` from the host's
//! `linegate-edge`, and scratch roots to install them into with `dpkg --root` or the tarball's `install.sh`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{bin_path, repo_root};

/// The Debian architecture of this machine, which the host binary is built for.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("cross/package.sh packages amd64 and arm64 only, not {other}"),
    }
}

/// The packages of one version built from the host binary.
pub struct Built {
    /// `linegate-edge_<version>_<arch>.deb`.
    pub deb: PathBuf,
    /// `linegate-edge-<version>-<arch>.tar.gz`.
    pub tarball: PathBuf,
}

/// Two versions of the packages (built once per test binary): the first install and the upgrade.
pub struct Packages {
    _dir: tempfile::TempDir,
    /// The first version, `0.1.0`.
    pub old: Built,
    /// The upgrade, `0.1.1`.
    pub new: Built,
}

/// The packages, built on first use (`cross/package.sh --fast`, a few seconds per version).
pub fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = build(dir.path(), "0.1.0");
        let new = build(dir.path(), "0.1.1");
        Packages {
            _dir: dir,
            old,
            new,
        }
    })
}

fn build(out: &Path, version: &str) -> Built {
    let binary = bin_path("linegate-edge");
    let result = run(Command::new(repo_root().join("cross/package.sh"))
        .args([
            "--fast",
            "--arch",
            host_arch(),
            "--version",
            version,
            "--out",
        ])
        .arg(out)
        .arg("--binary")
        .arg(&binary));
    assert!(result.ok, "cross/package.sh failed:\n{}", result.output);
    let arch = host_arch();
    let built = Built {
        deb: out.join(format!("linegate-edge_{version}_{arch}.deb")),
        tarball: out.join(format!("linegate-edge-{version}-{arch}.tar.gz")),
    };
    assert!(
        built.deb.exists() && built.tarball.exists(),
        "{}",
        result.output
    );
    built
}

/// What a command did: success and its stdout and stderr together.
pub struct Outcome {
    /// Exit status 0.
    pub ok: bool,
    /// stdout followed by stderr.
    pub output: String,
}

/// Runs `command` to completion.
pub fn run(command: &mut Command) -> Outcome {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    Outcome {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The dpkg status entry of this machine's libc6 (same version and architecture, no files), so that a scratch
/// root satisfies a glibc-linked package's `Depends: libc6 (>= X)` as the machine itself would.
fn host_libc6_status() -> String {
    let query = run(Command::new("dpkg-query").args([
        "--show",
        "--showformat=${Version} ${Architecture}",
        "libc6",
    ]));
    assert!(query.ok, "dpkg-query libc6: {}", query.output);
    let (version, arch) = query
        .output
        .trim()
        .split_once(' ')
        .expect("version and arch");
    format!(
        "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
         Maintainer: stand-in <root@localhost>\nArchitecture: {arch}\nVersion: {version}\n\
         Description: the host's libc6, registered in a scratch root\n\n"
    )
}

/// An empty root directory with what user creation and dpkg need: passwd, group (with `dialout`), shadow
/// files and a dpkg database holding only the host's libc6 (see [`host_libc6_status`]).
pub struct ScratchRoot {
    dir: tempfile::TempDir,
}

impl ScratchRoot {
    /// A fresh scratch root.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for sub in [
            "etc",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/info",
            "var/log",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\ndialout:x:20:\n").unwrap();
        for empty in ["etc/shadow", "etc/gshadow", "var/lib/dpkg/info/libc6.list"] {
            std::fs::write(root.join(empty), "").unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), host_libc6_status()).unwrap();
        Self { dir }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` (an absolute path on the target, like `/etc/linegate`) inside the root.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel.trim_start_matches('/'))
    }

    /// Runs dpkg on this root; maintainer scripts run outside a chroot with `DPKG_ROOT` set.
    pub fn dpkg(&self, args: &[&str]) -> Outcome {
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.path().display()))
            .arg("--force-script-chrootless")
            .args(args))
    }

    /// Permission bits of `rel`.
    pub fn mode(&self, rel: &str) -> u32 {
        self.meta(rel).mode() & 0o7777
    }

    /// Owner uid and gid of `rel`.
    pub fn owner(&self, rel: &str) -> (u32, u32) {
        let meta = self.meta(rel);
        (meta.uid(), meta.gid())
    }

    fn meta(&self, rel: &str) -> std::fs::Metadata {
        std::fs::symlink_metadata(self.file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// The entries of the root's `/etc/<db>` (passwd or group) named `name`, split at ':'.
    pub fn entries(&self, db: &str, name: &str) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.file(&format!("/etc/{db}")))
            .unwrap()
            .lines()
            .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
            .filter(|fields| fields[0] == name)
            .collect()
    }

    /// uid and gid of the `linegate` user in this root.
    pub fn linegate_ids(&self) -> (u32, u32) {
        let users = self.entries("passwd", "linegate");
        assert_eq!(users.len(), 1, "one linegate user: {users:?}");
        (users[0][2].parse().unwrap(), users[0][3].parse().unwrap())
    }
}

impl Default for ScratchRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks what an install put into `root`: binary, unit, config and state with their modes and owners.
pub fn assert_installed(root: &ScratchRoot, binary: &str, unit: &str) {
    let (uid, gid) = root.linegate_ids();
    assert_eq!(root.mode(binary), 0o755);
    assert_eq!(root.mode(unit), 0o644);
    assert_eq!(root.mode("/etc/linegate/edge.toml"), 0o640);
    assert_eq!(root.owner("/etc/linegate/edge.toml"), (0, gid));
    assert_eq!(root.mode("/etc/linegate/edge.env"), 0o600);
    assert_eq!(root.owner("/etc/linegate/edge.env"), (0, 0));
    assert_eq!(root.mode("/var/lib/linegate"), 0o750);
    assert_eq!(root.owner("/var/lib/linegate"), (uid, gid));
    let dialout = root.entries("group", "dialout");
    assert!(
        dialout[0][3].split(',').any(|m| m == "linegate"),
        "{dialout:?}"
    );
    let wants = root.file("/etc/systemd/system/multi-user.target.wants/linegate-edge.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap().to_str().unwrap(),
        unit,
        "enabled"
    );
    // The default config points the outbox at the state dir and needs the station id.
    let config = root.file("/etc/linegate/edge.toml");
    let check = run(Command::new(root.file(binary))
        .arg("check-config")
        .arg(&config)
        .env("LINEGATE_STATION_ID", "st-7"));
    assert!(check.ok, "{}", check.output);
    assert!(
        check
            .output
            .contains("station st-7 with outbox /var/lib/linegate/outbox.db"),
        "{}",
        check.output
    );
    let unset = run(Command::new(root.file(binary))
        .arg("check-config")
        .arg(&config)
        .env_remove("LINEGATE_STATION_ID"));
    assert!(!unset.ok);
    assert!(
        unset
            .output
            .contains("environment variable LINEGATE_STATION_ID is not set"),
        "{}",
        unset.output
    );
}

/// An operator's changes: the station id, a config edit, and a waiting outbox.
pub fn configure_and_fill(root: &ScratchRoot) {
    let env = root.file("/etc/linegate/edge.env");
    let mut text = std::fs::read_to_string(&env).unwrap();
    text.push_str("LINEGATE_STATION_ID=st-7\n");
    std::fs::write(&env, text).unwrap();
    let config = root.file("/etc/linegate/edge.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("linger_ms = 5", "linger_ms = 20");
    std::fs::write(&config, text).unwrap();
    std::fs::write(root.file("/var/lib/linegate/outbox.db"), "waiting results").unwrap();
}

/// Checks that the changes of [`configure_and_fill`] survived.
pub fn assert_operator_changes_kept(root: &ScratchRoot) {
    let env = std::fs::read_to_string(root.file("/etc/linegate/edge.env")).unwrap();
    assert!(env.contains("LINEGATE_STATION_ID=st-7\n"), "{env}");
    let config = std::fs::read_to_string(root.file("/etc/linegate/edge.toml")).unwrap();
    assert!(config.contains("linger_ms = 20"), "{config}");
    assert_eq!(
        std::fs::read_to_string(root.file("/var/lib/linegate/outbox.db")).unwrap(),
        "waiting results"
    );
}
