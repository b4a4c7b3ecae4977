//! End-to-end tests of the edge against real Mosquitto and Apache Kafka (and real Modbus servers): capture,
//! the outbox under crashes and bounds, MQTT sessions, observability, reload, pushed configs, the CLI.
//!
//! One binary per theme (`scripts/test.sh` runs them as tiers); each module was a test binary of its own and
//! starts the brokers it needs.

mod cli;
mod config_push;
mod crash;
mod modbus;
mod mqtt5;
mod mqtt_burst;
mod mqtt_hold;
mod mqtt_mapping;
mod observe;
mod outbox_full;
mod reload;
