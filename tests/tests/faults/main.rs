//! The whole pipeline, and delivery under faults: station documents over MQTT through edges, Kafka and the
//! bridge to the topics; exactly-once through kills and fencing; the broker restarted; what goes wrong at a
//! station.
//!
//! One binary per theme (`scripts/test.sh` runs them as tiers); each module was a test binary of its own and
//! starts the brokers it needs.

mod checked;
mod checked_infra;
mod exactly_once;
mod kafka_restart;
mod pipeline;
mod station_faults;
