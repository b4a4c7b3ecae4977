//! Packages and the systemd unit as a line PC meets them: the unit passes `systemd-analyze verify` and keeps
//! a low exposure score; the .deb (through dpkg) and the tarball (through its install.sh) install into a
//! scratch root with the right files, owners and modes, an upgrade keeps a changed config and the outbox,
//! and a purge removes the state and says what it removed.

use std::process::Command;

use linegate_e2e::cross::Elf;
use linegate_e2e::packaging::{
    assert_installed, assert_operator_changes_kept, configure_and_fill, packages, run, ScratchRoot,
};
use linegate_e2e::{bin_path, repo_root};

/// The exposure `systemd-analyze security --offline=yes` gives the unit (systemd 252); lower is better.
const MAX_EXPOSURE: f64 = 1.5;

/// The unit with ExecStart pointing at the host binary (verify checks that the command exists).
fn unit_for_host(unit: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let text = std::fs::read_to_string(repo_root().join("cross/systemd/linegate-edge.service"))
        .unwrap()
        .replace(
            "/usr/bin/linegate-edge",
            bin_path("linegate-edge").to_str().unwrap(),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn unit_verifies_cleanly() {
    let (_dir, unit) = unit_for_host("linegate-edge.service");
    let verify = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        verify.ok,
        "systemd-analyze verify failed:\n{}",
        verify.output
    );
    assert_eq!(verify.output.trim(), "", "verify warns");

    // The check can fail: verify exits 0 on a key it cannot parse but warns, which the assertion above
    // catches (systemd 252 prints `Failed to parse service type, ignoring: notifyy`).
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("Type=notify", "Type=notifyy")).unwrap();
    let broken = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(broken.output.contains("notifyy"), "{}", broken.output);
}

#[test]
fn unit_exposure_score_is_low() {
    let (_dir, unit) = unit_for_host("linegate-edge.service");
    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit));
    assert!(security.ok, "{}", security.output);
    let line = security
        .output
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{}", security.output));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the score in {line}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{}",
        security.output
    );
    // What the score rests on, named so that a change shows which setting went.
    for setting in [
        "✓ NoNewPrivileges=",
        "✓ ProtectSystem=",
        "✓ ProtectHome=",
        "✓ PrivateTmp=",
        "✓ MemoryDenyWriteExecute=",
        "✓ RestrictAddressFamilies=~AF_NETLINK",
        "✓ SystemCallFilter=~@privileged",
        "✓ CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "✓ User=/DynamicUser=",
    ] {
        assert!(
            security.output.contains(setting),
            "{setting} missing:\n{}",
            security.output
        );
    }
}

#[test]
fn unit_runs_the_edge_as_a_watched_notify_service() {
    let text =
        std::fs::read_to_string(repo_root().join("cross/systemd/linegate-edge.service")).unwrap();
    let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    for expected in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=linegate",
        "SupplementaryGroups=dialout",
        "StateDirectory=linegate",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw",
        "EnvironmentFile=/etc/linegate/edge.env",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from the unit");
    }
}

/// A glibc-linked binary (here the host build) makes a .deb that depends on the glibc it needs: the newest
/// GLIBC_ symbol version it uses. (The static musl build's has no Depends: tests/tests/system/cross.rs.)
#[test]
fn deb_of_a_glibc_binary_depends_on_the_libc6_it_needs() {
    let glibc = Elf::read(&bin_path("linegate-edge"))
        .min_glibc()
        .expect("the host build links glibc")
        .to_owned();
    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&packages().old.deb)
        .arg("Depends"));
    assert!(depends.ok, "{}", depends.output);
    assert_eq!(depends.output.trim(), format!("libc6 (>= {glibc})"));
}

#[test]
fn deb_installs_upgrades_keeping_config_and_outbox_and_purge_says_what_it_removes() {
    let packages = packages();
    let root = ScratchRoot::new();
    let deb = |p: &std::path::Path| p.to_str().unwrap().to_owned();

    let install = root.dpkg(&["--install", &deb(&packages.old.deb)]);
    assert!(install.ok, "{}", install.output);
    assert!(
        install.output.contains("created system user linegate"),
        "{}",
        install.output
    );
    assert!(
        install
            .output
            .contains("set LINEGATE_STATION_ID in /etc/linegate/edge.env"),
        "{}",
        install.output
    );
    assert_installed(
        &root,
        "/usr/bin/linegate-edge",
        "/lib/systemd/system/linegate-edge.service",
    );
    let status = root.dpkg(&["--status", "linegate-edge"]);
    assert!(
        status.output.contains("Version: 0.1.0"),
        "{}",
        status.output
    );
    assert!(
        status
            .output
            .contains("Conffiles:\n /etc/linegate/edge.toml ")
            && status.output.contains(" /etc/linegate/edge.env "),
        "{}",
        status.output
    );

    configure_and_fill(&root);
    let upgrade = root.dpkg(&["--install", &deb(&packages.new.deb)]);
    assert!(upgrade.ok, "{}", upgrade.output);
    assert!(
        !upgrade.output.contains("created system user"),
        "{}",
        upgrade.output
    );
    let status = root.dpkg(&["--status", "linegate-edge"]);
    assert!(
        status.output.contains("Version: 0.1.1"),
        "{}",
        status.output
    );
    assert_operator_changes_kept(&root);
    assert_installed(
        &root,
        "/usr/bin/linegate-edge",
        "/lib/systemd/system/linegate-edge.service",
    );

    let purge = root.dpkg(&["--purge", "linegate-edge"]);
    assert!(purge.ok, "{}", purge.output);
    for said in [
        "removing /var/lib/linegate (the outbox: results not yet forwarded to Kafka are lost; 1 files: outbox.db)",
        "removed /var/lib/linegate",
        "removed the station config /etc/linegate/edge.toml and /etc/linegate/edge.env",
    ] {
        assert!(purge.output.contains(said), "{said} not in:\n{}", purge.output);
    }
    for gone in [
        "/var/lib/linegate",
        "/etc/linegate",
        "/usr/bin/linegate-edge",
        "/lib/systemd/system/linegate-edge.service",
        "/etc/systemd/system/multi-user.target.wants/linegate-edge.service",
    ] {
        assert!(
            std::fs::symlink_metadata(root.file(gone)).is_err(),
            "{gone} still there"
        );
    }
}

/// Unpacks `tarball` into a temporary directory and returns its install.sh.
fn unpack(tarball: &std::path::Path, into: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let untar = run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(into));
    assert!(untar.ok, "{}", untar.output);
    let name = tarball
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(".tar.gz");
    into.join(name).join("install.sh")
}

fn install_sh(script: &std::path::Path, root: &ScratchRoot, extra: &[&str]) -> String {
    let result = run(Command::new(script)
        .arg("--root")
        .arg(root.path())
        .args(extra));
    assert!(result.ok, "install.sh {extra:?} failed:\n{}", result.output);
    result.output
}

#[test]
fn tarball_installs_upgrades_keeping_config_and_outbox_and_purge_says_what_it_removes() {
    let packages = packages();
    let unpacked = tempfile::tempdir().unwrap();
    let old = unpack(&packages.old.tarball, &unpacked.path().join("old"));
    let new = unpack(&packages.new.tarball, &unpacked.path().join("new"));
    let root = ScratchRoot::new();
    let bin = "/usr/local/bin/linegate-edge";
    let unit = "/etc/systemd/system/linegate-edge.service";

    let output = install_sh(&old, &root, &[]);
    assert!(output.contains("created system user linegate"), "{output}");
    assert!(output.contains("set LINEGATE_STATION_ID"), "{output}");
    assert_installed(&root, bin, unit);
    let installed_unit = std::fs::read_to_string(root.file(unit)).unwrap();
    assert!(
        installed_unit.contains(&format!(
            "ExecStart={bin} run --config /etc/linegate/edge.toml"
        )),
        "{installed_unit}"
    );
    assert!(
        installed_unit
            .contains("Documentation=file:///usr/local/share/doc/linegate-edge/README.md"),
        "{installed_unit}"
    );
    assert!(root
        .file("/usr/local/share/doc/linegate-edge/README.md")
        .exists());

    configure_and_fill(&root);
    let output = install_sh(&new, &root, &[]);
    assert!(!output.contains("created system user"), "{output}");
    assert!(
        output.contains(
            "kept /etc/linegate/edge.toml (yours); the new default is /etc/linegate/edge.toml.new"
        ),
        "{output}"
    );
    assert_operator_changes_kept(&root);
    assert!(root.file("/etc/linegate/edge.toml.new").exists());

    let output = install_sh(&new, &root, &["--uninstall"]);
    assert!(output.contains(&format!("removed {bin}")), "{output}");
    assert!(output.contains(&format!("removed {unit}")), "{output}");
    assert!(
        output.contains("kept /etc/linegate and /var/lib/linegate (the outbox)"),
        "{output}"
    );
    assert!(!root.file(bin).exists() && !root.file(unit).exists());
    assert_operator_changes_kept(&root);

    let output = install_sh(&new, &root, &["--purge"]);
    for said in [
        "removing /var/lib/linegate (the outbox: results not yet forwarded to Kafka are lost; 1 files: outbox.db)",
        "removed /var/lib/linegate",
        "removing /etc/linegate (the station config; 4 files: edge.env edge.env.new edge.toml edge.toml.new)",
        "removed /etc/linegate",
    ] {
        assert!(output.contains(said), "{said} not in:\n{output}");
    }
    assert!(!root.file("/var/lib/linegate").exists());
    assert!(!root.file("/etc/linegate").exists());
}

/// Runs `start_if_configured` of cross/pkg/common.sh on this machine (ROOT empty) with a config directory of
/// the test's and a unit name nothing has, returning what it said.
fn start_decision(conf_dir: &std::path::Path) -> String {
    let script = format!(
        ". '{}'; ROOT=''; CONF_DIR='{}'; SERVICE=linegate-edge-test-absent.service; start_if_configured '{}'",
        repo_root().join("cross/pkg/common.sh").display(),
        conf_dir.display(),
        bin_path("linegate-edge").display()
    );
    let result = run(Command::new("sh").arg("-c").arg(script));
    assert!(result.ok, "{}", result.output);
    result.output
}

#[test]
fn service_is_started_only_once_the_station_id_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo_root().join("config/edge.example.toml");
    std::fs::copy(&config, dir.path().join("edge.toml")).unwrap();
    std::fs::copy(
        repo_root().join("cross/pkg/edge.env"),
        dir.path().join("edge.env"),
    )
    .unwrap();

    let said = start_decision(dir.path());
    assert!(
        said.contains("not started: error: ")
            && said.contains("environment variable LINEGATE_STATION_ID is not set"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "set LINEGATE_STATION_ID in {}/edge.env",
            dir.path().display()
        )),
        "{said}"
    );

    let env = dir.path().join("edge.env");
    let mut text = std::fs::read_to_string(&env).unwrap();
    text.push_str("LINEGATE_STATION_ID=st-7\n");
    std::fs::write(&env, text).unwrap();
    let said = start_decision(dir.path());
    // Configured: started where systemd runs and the unit is enabled; here neither holds, and it says which.
    assert!(
        said.contains("configured; systemd is not running here")
            || said.contains("configured but disabled: not started"),
        "{said}"
    );
    assert!(!said.contains("not started: error"), "{said}");
}

/// A scratch install without root: `fakeroot` lets postinst's `useradd --prefix` and `chown` run, and
/// `--force-not-root` and `--log` keep dpkg away from the machine's own files. Run as `nobody` when the
/// tests run as root.
#[test]
fn deb_installs_into_a_scratch_root_without_root_through_fakeroot() {
    let root = ScratchRoot::new();
    let deb = root.path().join("linegate-edge.deb");
    std::fs::copy(&packages().old.deb, &deb).unwrap();
    let as_root = run(Command::new("id").arg("-u")).output.trim() == "0";
    if as_root {
        let chown = run(Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(root.path()));
        assert!(chown.ok, "{}", chown.output);
    }
    let mut command = if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "fakeroot",
        ]);
        c
    } else {
        Command::new("fakeroot")
    };
    let install = run(command
        .env("HOME", root.path())
        .arg("dpkg")
        .arg(format!("--root={}", root.path().display()))
        .arg(format!("--log={}", root.path().join("dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-not-root", "--install"])
        .arg(&deb));
    assert!(install.ok, "{}", install.output);
    assert!(
        install.output.contains("created system user linegate"),
        "{}",
        install.output
    );
    root.linegate_ids();
    assert_eq!(root.mode("/usr/bin/linegate-edge"), 0o755);
    assert_eq!(root.mode("/var/lib/linegate"), 0o750);
    assert_eq!(root.mode("/etc/linegate/edge.env"), 0o600);
}
