//! linegate-edge: the agent on a station PC.
//!
//! Data flows one way: a source ([`source`]) turns station input into events ([`capture`]) and hands them to
//! the outbox ([`outbox`]); only with the commit receipt in hand does the source acknowledge upstream. The
//! forwarder ([`forward`]) reads the outbox in sequence order, sends to Kafka, and deletes what Kafka confirmed.
//! [`push`] watches the station's pushed config on Kafka and hands a verified, validated one to [`run`], which
//! restarts the sources with it like a SIGHUP reload.

pub mod capture;
pub mod forward;
pub mod observe;
pub mod ops;
pub mod outbox;
pub mod push;
pub mod run;
pub mod source;
