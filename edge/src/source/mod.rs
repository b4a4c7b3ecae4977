//! Sources: where station results come from. Each hands events to the outbox and acknowledges upstream only
//! with the commit receipt in hand.

pub mod modbus;
pub mod mqtt;
