//! The cross-compiled edge from `cross/build.sh` (`dist/bin/<triple>/linegate-edge`): the aarch64 binary runs
//! under qemu-user against the real brokers and forwards every result in order; the x86-64 musl binary is
//! static and runs here; the armv7 one is an ARM binary that checks a config under qemu; the packages take the
//! glibc version the ARM binary needs. `scripts/test.sh` builds the binaries before `cargo test`.

use std::process::Command;
use std::time::{Duration, Instant};

use linegate_e2e::cross::{
    built_binary, command_for, dist_binary, program_for, Elf, AARCH64, ARMV7, GLIBC_LIBRARIES, MUSL,
};
use linegate_e2e::kafka::{consume_until_async, create_topic};
use linegate_e2e::packaging::run;
use linegate_e2e::stack::{edge_env, station_topic, SUBSCRIBED};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{bin_path, mqtt, repo_root, ChildProcess, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent};

const STATION: &str = "ST-ARM64";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `binary ARGS` of `triple`, run to completion with the example config's station id set.
fn run_binary(triple: &str, args: &[&str]) -> linegate_e2e::packaging::Outcome {
    let binary = built_binary(triple);
    run(command_for(triple, &binary)
        .args(args)
        .env("LINEGATE_STATION_ID", "st-cross"))
}

fn example_config() -> String {
    repo_root()
        .join("config/edge.example.toml")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aarch64_edge_under_qemu_forwards_every_result_in_order() {
    let binary = built_binary(AARCH64);
    assert_eq!(
        Elf::read(&binary).machine(),
        "AArch64",
        "{} must be an AArch64 binary",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let (qemu, mut args) = program_for(AARCH64, &binary);
    args.extend(["run".to_owned(), "--config".to_owned(), example_config()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let mut edge = ChildProcess::spawn(
        "linegate-edge (aarch64, qemu)",
        &qemu,
        &args,
        &edge_env(STATION, &mosquitto, &kafka, dir.path()),
        &dir.path().join("edge-aarch64.log"),
    )
    .unwrap();
    edge.wait_for_log(SUBSCRIBED, Duration::from_secs(60))
        .unwrap();
    eprintln!(
        "aarch64 edge under qemu subscribed after {:?}",
        started.elapsed()
    );

    let documents = inspection_documents(STATION, 40, 64);
    let payloads: Vec<Vec<u8>> = documents
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    let published = Instant::now();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-aarch64",
        &station_topic(STATION),
        &payloads,
        0,
    )
    .await
    .unwrap();
    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        documents.len(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail(20)));
    eprintln!(
        "{} results through the aarch64 edge in {:?}",
        documents.len(),
        published.elapsed()
    );

    // Every result once, in publish order, keyed by the station, seq 1..=N without a gap.
    assert_eq!(records.len(), documents.len(), "each result exactly once");
    for (index, (record, document)) in records.iter().zip(&documents).enumerate() {
        assert_eq!(record.key_str(), Some(STATION));
        assert_eq!(
            record.partition, records[0].partition,
            "one partition per station"
        );
        let event: EdgeEvent = decode(&record.value).expect("an EdgeEvent");
        assert_eq!(event.station_id, STATION);
        assert_eq!(
            event.seq,
            i64::try_from(index).unwrap() + 1,
            "seq of #{index}"
        );
        assert_eq!(
            Some(event.event_id.as_str()),
            document["event_id"].as_str(),
            "result #{index} in publish order"
        );
        assert_eq!(
            Some(event.event_type.as_str()),
            document["event_type"].as_str()
        );
    }

    // SIGTERM reaches the guest through qemu: the edge drains and exits by itself.
    assert!(
        edge.terminate(Duration::from_secs(30)),
        "the aarch64 edge did not stop on SIGTERM\n{}",
        edge.log_tail(20)
    );
}

#[test]
fn aarch64_binary_needs_only_glibc_and_reports_its_version_under_qemu() {
    let elf = Elf::read(&built_binary(AARCH64));
    assert_eq!((elf.machine(), elf.class()), ("AArch64", "ELF64"));
    assert!(
        elf.has_interpreter(),
        "glibc dynamic: {}",
        elf.program_headers
    );
    let foreign: Vec<&String> = elf
        .needed
        .iter()
        .filter(|lib| !GLIBC_LIBRARIES.contains(&lib.as_str()))
        .collect();
    assert!(
        foreign.is_empty(),
        "C libraries must be built in, yet it needs {foreign:?} (all: {:?})",
        elf.needed
    );
    assert!(
        elf.needed.iter().any(|l| l == "libc.so.6"),
        "{:?}",
        elf.needed
    );
    let glibc = elf.min_glibc().expect("GLIBC_ symbol versions");
    eprintln!("aarch64 binary needs glibc >= {glibc}: {:?}", elf.needed);
    let version = run_binary(AARCH64, &["--version"]);
    assert!(version.ok, "{}", version.output);
    assert_eq!(version.output.trim(), format!("linegate-edge {VERSION}"));
}

#[test]
fn musl_binary_is_static_and_runs_on_the_host() {
    let binary = built_binary(MUSL);
    let elf = Elf::read(&binary);
    assert_eq!(
        (elf.machine(), elf.class()),
        ("Advanced Micro Devices X86-64", "ELF64")
    );
    assert!(
        !elf.has_interpreter(),
        "a static binary has no program interpreter:\n{}",
        elf.program_headers
    );
    assert!(elf.needed.is_empty(), "needs {:?}", elf.needed);
    assert!(elf.glibc_versions.is_empty(), "{:?}", elf.glibc_versions);
    let file = run(Command::new("file").arg("-b").arg(&binary));
    assert!(file.ok, "{}", file.output);
    assert!(file.output.contains("static"), "file says: {}", file.output);

    // The same checks see the host build's loader and libraries: they do detect a dynamic binary.
    let host = Elf::read(&bin_path("linegate-edge"));
    assert!(host.has_interpreter() && host.needed.iter().any(|l| l == "libc.so.6"));

    let version = run_binary(MUSL, &["--version"]);
    assert!(version.ok, "{}", version.output);
    assert_eq!(version.output.trim(), format!("linegate-edge {VERSION}"));
    let check = run_binary(MUSL, &["check-config", &example_config()]);
    assert!(check.ok, "{}", check.output);
    assert!(
        check.output.contains("station st-cross"),
        "{}",
        check.output
    );
}

/// armv7 is built by `cross/build.sh` (all targets) but not by `scripts/test.sh` unless
/// `LINEGATE_CROSS_TARGETS` names it; without the binary this test says so and checks nothing.
#[test]
fn armv7_binary_is_arm_and_checks_a_config_under_qemu() {
    let binary = dist_binary(ARMV7);
    if !binary.is_file() {
        eprintln!(
            "SKIPPED: {} not built (cross/build.sh {ARMV7}; scripts/test.sh builds it when \
             LINEGATE_CROSS_TARGETS includes it)",
            binary.display()
        );
        return;
    }
    let elf = Elf::read(&binary);
    assert_eq!((elf.machine(), elf.class()), ("ARM", "ELF32"));
    assert!(
        elf.header.contains("hard-float"),
        "armhf (hard-float ABI): {}",
        elf.header
    );
    let foreign: Vec<&String> = elf
        .needed
        .iter()
        .filter(|lib| !GLIBC_LIBRARIES.contains(&lib.as_str()))
        .collect();
    assert!(foreign.is_empty(), "needs {foreign:?}");
    let check = run_binary(ARMV7, &["check-config", &example_config()]);
    assert!(check.ok, "{}", check.output);
    assert!(
        check.output.contains("station st-cross"),
        "{}",
        check.output
    );
    let bad = run_binary(ARMV7, &["check-config", "/nonexistent/edge.toml"]);
    assert!(!bad.ok, "a missing config is refused: {}", bad.output);
}

/// `cross/package.sh` without `--binary` packages the cross builds: amd64 from the static musl binary (no
/// dependency), arm64 from the aarch64 one, depending on the glibc it was linked against.
#[test]
fn packages_of_the_cross_builds_declare_the_glibc_they_need() {
    let arm = Elf::read(&built_binary(AARCH64));
    built_binary(MUSL);
    let out = tempfile::tempdir().unwrap();
    let built = run(Command::new(repo_root().join("cross/package.sh"))
        .args(["--fast", "--version", "9.9.9", "--out"])
        .arg(out.path()));
    assert!(built.ok, "{}", built.output);
    let field = |arch: &str, name: &str| {
        let deb = out.path().join(format!("linegate-edge_9.9.9_{arch}.deb"));
        let value = run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name));
        assert!(value.ok, "{}", value.output);
        value.output.trim().to_owned()
    };
    assert_eq!(field("amd64", "Architecture"), "amd64");
    assert_eq!(
        field("amd64", "Depends"),
        "",
        "the musl binary needs nothing"
    );
    assert_eq!(field("arm64", "Architecture"), "arm64");
    assert_eq!(
        field("arm64", "Depends"),
        format!("libc6 (>= {})", arm.min_glibc().unwrap())
    );
    for arch in ["amd64", "arm64"] {
        let tarball = out
            .path()
            .join(format!("linegate-edge-9.9.9-{arch}.tar.gz"));
        assert!(tarball.is_file(), "{}", built.output);
    }
}
