//! The slow system tier: cross-compiled binaries under qemu, packages and the systemd unit, the watchdog, a
//! full disk (needs root: a tmpfs is mounted). Run after the other tiers.
//!
//! One binary per theme (`scripts/test.sh` runs them as tiers); each module was a test binary of its own and
//! starts the brokers it needs.

mod cross;
mod disk_full;
mod packaging;
mod systemd_watchdog;
