//! The command lines as an operator meets them: `check-config` accepts the examples and names file, line and
//! key of a mistake.

use std::process::Command;

use linegate_e2e::{bin_path, repo_root};

fn check_config(
    binary: &str,
    file: &std::path::Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = Command::new(bin_path(binary));
    command.arg("check-config").arg(file);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn edge_example_config_is_valid_once_the_station_id_is_set() {
    let example = repo_root().join("config/edge.example.toml");
    let (code, stdout, _) = check_config(
        "linegate-edge",
        &example,
        &[("LINEGATE_STATION_ID", "ST-42")],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("station ST-42"), "{stdout}");
    assert!(stdout.contains("stations/ST-42/results"), "{stdout}");
}

#[test]
fn edge_example_config_without_station_id_names_the_variable_and_line() {
    let example = repo_root().join("config/edge.example.toml");
    let (code, _, stderr) = check_config("linegate-edge", &example, &[]);
    assert_eq!(code, 2);
    let line = std::fs::read_to_string(&example)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("id = "))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "edge.example.toml:{line}: environment variable LINEGATE_STATION_ID is not set"
        )),
        "{stderr}"
    );
}

#[test]
fn edge_config_with_a_wrong_type_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("station.toml");
    std::fs::write(
        &file,
        "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp\"\n\n[kafka]\nbootstrap = \"k:9092\"\n\n[mqtt]\nhost = \"h\"\nport = \"eighteen\"\nclient_id = \"c\"\ntopics = [\"t\"]\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config("linegate-edge", &file, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("station.toml:10:"), "{stderr}");
    assert!(stderr.contains("port = \"eighteen\""), "{stderr}");
}

#[test]
fn bridge_example_config_is_valid_and_finds_its_topic_plan() {
    let example = repo_root().join("config/bridge.example.toml");
    let (code, stdout, stderr) = check_config("linegate-bridge", &example, &[]);
    assert_eq!(code, 0, "{stderr}");
    let planned = std::fs::read_to_string(repo_root().join("config/topics.toml"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("[topics."))
        .count();
    assert!(
        stdout.contains(&format!("topics.toml with {planned} topics")),
        "{stdout}"
    );
}

#[test]
fn bridge_config_with_an_unknown_key_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(&file, "[bridge]\ngroup_id = \"g\"\ntopics_file = \"t.toml\"\ngroup = \"x\"\n[kafka]\nbootstrap = \"k:1\"\n")
        .unwrap();
    let (code, _, stderr) = check_config("linegate-bridge", &file, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bridge.toml:4:"), "{stderr}");
    assert!(stderr.contains("unknown field `group`"), "{stderr}");
}

#[test]
fn modbus_example_config_is_valid() {
    let example = repo_root().join("config/edge.modbus.example.toml");
    let (code, stdout, stderr) = check_config(
        "linegate-edge",
        &example,
        &[("LINEGATE_STATION_ID", "ST-43")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("station ST-43"), "{stdout}");
}

#[test]
fn a_modbus_field_without_a_type_is_named_with_its_device_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(repo_root().join("config/edge.modbus.example.toml")).unwrap();
    let broken = example.replace(
        r#"{ target = "chip_id", address = 20, type = "string", length = 8 },"#,
        r#"{ target = "chip_id", address = 20 },"#,
    );
    assert_ne!(broken, example);
    let path = dir.path().join("station.toml");
    std::fs::write(&path, broken).unwrap();
    let (code, _, stderr) =
        check_config("linegate-edge", &path, &[("LINEGATE_STATION_ID", "ST-43")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("modbus.devices[0].fields[1]") && stderr.contains("press-1 `chip_id`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("needs `address` and `type`, or a `constant`"),
        "{stderr}"
    );
}
