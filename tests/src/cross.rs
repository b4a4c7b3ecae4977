//! Support for the cross-build tests: the binaries `cross/build.sh` put into `dist/bin/<triple>/`, what their
//! ELF headers say (read with binutils' `readelf`, which reads every architecture), and running a foreign one
//! under Debian's `qemu-user-static`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo_root;

/// The static x86-64 build.
pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// The 64-bit ARM build (glibc dynamic, every other C library built in).
pub const AARCH64: &str = "aarch64-unknown-linux-gnu";
/// The 32-bit ARM build (hard float, glibc dynamic).
pub const ARMV7: &str = "armv7-unknown-linux-gnueabihf";

/// `dist/bin/<triple>/linegate-edge`.
pub fn dist_binary(triple: &str) -> PathBuf {
    repo_root()
        .join("dist/bin")
        .join(triple)
        .join("linegate-edge")
}

/// [`dist_binary`], asserting it was built; `scripts/test.sh` builds the musl and aarch64 ones.
pub fn built_binary(triple: &str) -> PathBuf {
    let path = dist_binary(triple);
    assert!(
        path.is_file(),
        "{} is missing: run `cross/build.sh {triple}` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// What `readelf` says about a binary.
pub struct Elf {
    /// `readelf -h`: the ELF header (`Machine:`, `Class:`, `Type:`).
    pub header: String,
    /// `readelf -l`: the program headers.
    pub program_headers: String,
    /// The `NEEDED` entries of the dynamic section: shared libraries the loader must find.
    pub needed: Vec<String>,
    /// The GLIBC_* symbol versions the binary requires (`readelf -V`), sorted oldest first.
    pub glibc_versions: Vec<String>,
}

impl Elf {
    /// Reads `path`'s headers.
    pub fn read(path: &Path) -> Self {
        let readelf = |flag: &str| {
            let out = Command::new("readelf")
                .args([flag, "--wide"])
                .arg(path)
                .output()
                .expect("readelf runs (Debian package binutils)");
            assert!(
                out.status.success(),
                "readelf {flag} {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).expect("utf-8 readelf output")
        };
        let needed = readelf("-d")
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_owned()))
            .collect();
        let mut glibc_versions: Vec<String> = readelf("-V")
            .split(|c: char| c.is_whitespace())
            .filter(|w| w.starts_with("GLIBC_2."))
            .map(str::to_owned)
            .collect();
        glibc_versions.sort_by_key(|v| version_key(v));
        glibc_versions.dedup();
        Self {
            header: readelf("-h"),
            program_headers: readelf("-l"),
            needed,
            glibc_versions,
        }
    }

    /// The `Machine:` line of the ELF header, e.g. `AArch64`.
    pub fn machine(&self) -> &str {
        self.field("Machine:")
    }

    /// The `Class:` line of the ELF header: `ELF64` or `ELF32`.
    pub fn class(&self) -> &str {
        self.field("Class:")
    }

    fn field(&self, name: &str) -> &str {
        self.header
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in\n{}", self.header))
    }

    /// Whether a program header asks for a program interpreter (the dynamic loader).
    pub fn has_interpreter(&self) -> bool {
        self.program_headers
            .lines()
            .any(|l| l.trim_start().starts_with("INTERP"))
    }

    /// The newest GLIBC_ version required, e.g. `2.34` (None for a binary that needs no glibc).
    pub fn min_glibc(&self) -> Option<&str> {
        self.glibc_versions
            .last()
            .map(|v| v.trim_start_matches("GLIBC_"))
    }
}

/// `GLIBC_2.17` -> [2, 17], for ordering versions numerically.
fn version_key(version: &str) -> Vec<u32> {
    version
        .trim_start_matches("GLIBC_")
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// The shared libraries a glibc-dynamic build may need: glibc itself and GCC's unwinder. Anything else
/// (librdkafka, libsqlite3, libz, libzstd, libssl...) would have to be installed on the line PC.
pub const GLIBC_LIBRARIES: [&str; 9] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-aarch64.so.1",
    "ld-linux-armhf.so.3",
    "libutil.so.1",
];

/// A command that runs `binary` of `triple` on this machine: directly for x86-64, under
/// `qemu-<arch>-static` with the Debian cross toolchain's glibc (`/usr/<gnu triple>`) for ARM.
pub fn command_for(triple: &str, binary: &Path) -> Command {
    let (qemu, sysroot) = match triple {
        AARCH64 => ("qemu-aarch64-static", "/usr/aarch64-linux-gnu"),
        ARMV7 => ("qemu-arm-static", "/usr/arm-linux-gnueabihf"),
        _ => return Command::new(binary),
    };
    let mut command = Command::new(qemu);
    command.arg("-L").arg(sysroot).arg(binary);
    command
}

/// Program and leading arguments of [`command_for`], for [`crate::ChildProcess::spawn`].
pub fn program_for(triple: &str, binary: &Path) -> (PathBuf, Vec<String>) {
    let command = command_for(triple, binary);
    (
        PathBuf::from(command.get_program()),
        command
            .get_args()
            .map(|a| a.to_str().expect("utf-8 argument").to_owned())
            .collect(),
    )
}
