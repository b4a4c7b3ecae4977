//! Support for linegate's end-to-end tests and demo: real brokers on free loopback ports, the real binaries
//! as child processes, and Kafka and MQTT helpers. Everything started here stops when dropped.

pub mod brokers;
pub mod checker;
pub mod config_push;
pub mod cross;
pub mod delivery;
pub mod events;
pub mod interop;
pub mod kafka;
pub mod mqtt;
pub mod packaging;
pub mod plc;
pub mod process;
pub mod prometheus;
pub mod schema_registry;
pub mod stack;
pub mod station;
pub mod tmpfs;

pub use brokers::{Kafka, Mosquitto};
pub use process::{bin_path, free_port, repo_root, ChildProcess};
pub use schema_registry::SchemaRegistryStandIn;
