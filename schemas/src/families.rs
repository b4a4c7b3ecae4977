//! Rust mirrors of the event families that joined the edge payload union after inspections: system,
//! manufacturing and ML inference events. Field names and order follow the `.avsc` files exactly.
//!
//! Every enum here has an `Other` symbol that the schema names as its default, so a reader built before a
//! symbol was added maps it to `Other` instead of failing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Declares a schema enum with its Avro symbols, `ALL` in schema order and `symbol()`.
macro_rules! schema_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $symbol:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every symbol, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The Avro symbol, e.g. `RESULTS_LOST`.
            pub fn symbol(self) -> &'static str {
                match self {
                    $($name::$variant => $symbol,)+
                }
            }

            /// The variant of an Avro symbol, if it is one of this build's.
            pub fn from_symbol(symbol: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.symbol() == symbol)
            }
        }
    };
}

schema_enum! {
    /// What a [`SystemEvent`] reports.
    SystemEventType {
        /// A symbol this build does not know.
        Other => "OTHER",
        /// The station produced results the edge never received (e.g. a PLC result counter jumped).
        ResultsLost => "RESULTS_LOST",
        /// A pushed or reloaded configuration was applied.
        ConfigApplied => "CONFIG_APPLIED",
        /// A pushed or reloaded configuration was refused; the previous one stays in force.
        ConfigRejected => "CONFIG_REJECTED",
        /// A source (PLC, broker) stopped answering.
        SourceDown => "SOURCE_DOWN",
        /// A source answers again.
        SourceUp => "SOURCE_UP",
        /// The outbox dropped events by its configured policy.
        OutboxDropped => "OUTBOX_DROPPED",
    }
}

schema_enum! {
    /// Which milestone a [`ManufacturingEvent`] reports.
    ManufacturingEventType {
        /// A symbol this build does not know.
        Other => "OTHER",
        /// A production batch was created.
        BatchCreated => "BATCH_CREATED",
        /// A lot entered production.
        LotStarted => "LOT_STARTED",
        /// A lot finished production.
        LotCompleted => "LOT_COMPLETED",
        /// Another production milestone.
        ProductionMilestone => "PRODUCTION_MILESTONE",
    }
}

schema_enum! {
    /// Which step an [`InferenceEvent`] reports.
    InferenceEventType {
        /// A symbol this build does not know.
        Other => "OTHER",
        /// An inference was requested for an inspection.
        InferenceRequested => "INFERENCE_REQUESTED",
        /// The model returned a result.
        InferenceCompleted => "INFERENCE_COMPLETED",
        /// The inference failed.
        InferenceFailed => "INFERENCE_FAILED",
        /// The model's inputs or outputs drifted from their reference.
        DriftDetected => "DRIFT_DETECTED",
    }
}

/// Something about the edge agent or its station that operators and auditors must see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvent {
    /// UUID, stable across resends.
    pub event_id: String,
    /// What happened.
    pub event_type: SystemEventType,
    /// When the edge observed it, epoch milliseconds (UTC).
    pub timestamp: i64,
    /// Reporting part of the agent, e.g. `modbus:press-1`.
    pub component: String,
    /// One sentence for an operator.
    pub message: String,
    /// Machine-readable particulars.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

/// A lot or batch milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManufacturingEvent {
    /// UUID, stable across resends.
    pub event_id: String,
    /// Which milestone.
    pub event_type: ManufacturingEventType,
    /// When it happened, epoch milliseconds (UTC).
    pub timestamp: i64,
    /// Production batch.
    pub batch_id: String,
    /// Lot within the batch.
    pub lot_id: Option<String>,
    /// Product being made.
    pub product_id: Option<String>,
    /// Units covered.
    pub quantity: Option<i64>,
    /// Status text.
    pub status: String,
    /// Data without a field of its own.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A step of the ML inference workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceEvent {
    /// UUID, stable across resends.
    pub event_id: String,
    /// Which step.
    pub event_type: InferenceEventType,
    /// When it happened, epoch milliseconds (UTC).
    pub timestamp: i64,
    /// Inspection the inference belongs to.
    pub inspection_id: String,
    /// Model that ran.
    pub model_name: String,
    /// Version of the model.
    pub model_version: String,
    /// Predicted class.
    pub prediction: Option<String>,
    /// Confidence of the prediction, 0.0 to 1.0.
    pub confidence: Option<f64>,
    /// Inference latency in milliseconds.
    pub latency_ms: Option<i64>,
    /// Data without a field of its own.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}
