//! Avro readers no one here wrote: Java Avro's `BinaryMessageDecoder` (`interop/java/Decode.java`) and
//! fastavro (`interop/python/decode.py`), run as child processes on records read from Kafka. Both print one
//! line per record, `<label>\t<JSON>` by the same rendering rules, so their outputs compare line by line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::kafka::Record;
use crate::repo_root;

/// The two independent readers, fetched into `~/.cache/linegate` by the interop scripts.
pub struct Readers {
    java_classpath: String,
    python: PathBuf,
}

/// One decoded record: its label (`topic/partition@offset`) and the JSON a reader printed.
pub type Decoded = Vec<(String, String)>;

impl Readers {
    /// Runs `interop/fetch-java.sh` and `interop/fetch-python.sh` (idempotent, quick once done).
    pub fn fetch() -> anyhow::Result<Self> {
        let java_home = script_output("interop/fetch-java.sh")?;
        let python = PathBuf::from(script_output("interop/fetch-python.sh")?);
        Ok(Self {
            java_classpath: format!("{java_home}/*"),
            python,
        })
    }

    /// Decodes `records` with Java Avro; `confluent` maps registry ids to schema files.
    pub fn java(
        &self,
        records: &[Record],
        confluent: &[(u32, PathBuf)],
    ) -> anyhow::Result<Decoded> {
        let mut command = Command::new("java");
        command
            .arg("-cp")
            .arg(&self.java_classpath)
            .arg(repo_root().join("interop/java/Decode.java"));
        decode(command, records, confluent)
    }

    /// Decodes `records` with fastavro; `confluent` as for [`Readers::java`].
    pub fn fastavro(
        &self,
        records: &[Record],
        confluent: &[(u32, PathBuf)],
    ) -> anyhow::Result<Decoded> {
        let mut command = Command::new(&self.python);
        command.arg(repo_root().join("interop/python/decode.py"));
        decode(command, records, confluent)
    }
}

/// The label a record gets in the readers' input and output.
pub fn label(record: &Record) -> String {
    format!("{}/{}@{}", record.topic, record.partition, record.offset)
}

fn script_output(script: &str) -> anyhow::Result<String> {
    let output = Command::new(repo_root().join(script))
        .output()
        .with_context(|| format!("running {script}"))?;
    if !output.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Writes `records` as `<label>\t<hex>` lines, runs `command SCHEMA_DIR FILE [--confluent ...]`, and parses
/// its lines; a reader that printed an ERROR line or exited non-zero fails with its whole output.
fn decode(
    mut command: Command,
    records: &[Record],
    confluent: &[(u32, PathBuf)],
) -> anyhow::Result<Decoded> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("records.tsv");
    let lines: Vec<String> = records
        .iter()
        .map(|r| format!("{}\t{}\n", label(r), hex::encode(&r.value)))
        .collect();
    std::fs::write(&file, lines.concat())?;
    command.arg(repo_root().join("schemas")).arg(&file);
    if !confluent.is_empty() {
        let ids: Vec<String> = confluent
            .iter()
            .map(|(id, path)| format!("{id}={}", path.display()))
            .collect();
        command.arg("--confluent").arg(ids.join(","));
    }
    let output = command.output().context("running an Avro reader")?;
    let stdout = String::from_utf8(output.stdout)?;
    if !output.status.success() {
        bail!(
            "the reader failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
        .lines()
        .map(|line| {
            line.split_once('\t')
                .map(|(l, json)| (l.to_owned(), json.to_owned()))
                .with_context(|| format!("not `label<TAB>json`: {line}"))
        })
        .collect()
}

/// Writes `text` to `dir/<name>` and returns the path, for `--confluent` schema files.
pub fn schema_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}
