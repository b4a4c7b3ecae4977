//! End-to-end tests of the bridge against real Apache Kafka: fan-out, routing, delivery through kills and
//! rebalances, scaling in a group, quality windows, the HTTP API, the schema registry, and the outputs read
//! by Avro implementations no one here wrote.
//!
//! One binary per theme (`scripts/test.sh` runs them as tiers); each module was a test binary of its own and
//! starts the brokers it needs.

mod api;
mod delivery;
mod fanout;
mod interop;
mod quality_windows;
mod rebalance;
mod routing;
mod scaling;
mod schema_registry;
mod state_readback;
