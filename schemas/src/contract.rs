//! The compiled contract: current schema and fingerprint of every message kind, and the writer
//! schemas of every released version, found by fingerprint.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::{rabin::Rabin, Schema};
use serde_json::Value;

use crate::compose::{compose, full_name};
use crate::SchemaError;

/// The top-level messages of the contract; each travels on Kafka on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// What an edge sends to the ingest topic.
    EdgeEvent,
    /// What the bridge writes to `inspection.lifecycle`.
    InspectionEvent,
    /// What the bridge writes to `quality.events`.
    QualityEvent,
    /// What the bridge writes to `audit.events`.
    AuditEvent,
    /// What the bridge writes to the manufacturing topic.
    ManufacturingEvent,
    /// What the bridge writes to `inference.workflow`.
    InferenceEvent,
    /// An edge's report about itself or its station (inside an EdgeEvent; on its own where routed).
    SystemEvent,
}

impl MessageKind {
    /// Every kind, for iteration in tests and tools.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::EdgeEvent,
        MessageKind::InspectionEvent,
        MessageKind::QualityEvent,
        MessageKind::AuditEvent,
        MessageKind::ManufacturingEvent,
        MessageKind::InferenceEvent,
        MessageKind::SystemEvent,
    ];

    /// File stem used under `avro/` and `released/`.
    pub fn file_stem(self) -> &'static str {
        match self {
            MessageKind::EdgeEvent => "edge_event",
            MessageKind::InspectionEvent => "inspection_event",
            MessageKind::QualityEvent => "quality_event",
            MessageKind::AuditEvent => "audit_event",
            MessageKind::ManufacturingEvent => "manufacturing_event",
            MessageKind::InferenceEvent => "inference_event",
            MessageKind::SystemEvent => "system_event",
        }
    }

    /// Name used in messages to operators.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::EdgeEvent => "EdgeEvent",
            MessageKind::InspectionEvent => "InspectionEvent",
            MessageKind::QualityEvent => "QualityEvent",
            MessageKind::AuditEvent => "AuditEvent",
            MessageKind::ManufacturingEvent => "ManufacturingEvent",
            MessageKind::InferenceEvent => "InferenceEvent",
            MessageKind::SystemEvent => "SystemEvent",
        }
    }
}

/// The `.avsc` sources, one record per file, as edited by people.
const SOURCES: &[(&str, &str)] = &[
    ("defect", include_str!("../avro/defect.avsc")),
    (
        "inspection_event",
        include_str!("../avro/inspection_event.avsc"),
    ),
    ("system_event", include_str!("../avro/system_event.avsc")),
    (
        "manufacturing_event",
        include_str!("../avro/manufacturing_event.avsc"),
    ),
    (
        "inference_event",
        include_str!("../avro/inference_event.avsc"),
    ),
    ("edge_event", include_str!("../avro/edge_event.avsc")),
    ("quality_event", include_str!("../avro/quality_event.avsc")),
    ("audit_event", include_str!("../avro/audit_event.avsc")),
];

/// One released (frozen) version of a message schema, kept forever so old writers stay readable.
pub struct ReleasedSchema {
    /// Message kind the schema describes.
    pub kind: MessageKind,
    /// Release number, starting at 1; each new release must read every older one.
    pub version: u32,
    /// The self-contained schema as released.
    pub json: &'static str,
}

/// Every released schema version. A schema change adds a file under `released/` and a line here;
/// the compatibility tests fail until it does.
pub const RELEASED: &[ReleasedSchema] = &[
    ReleasedSchema {
        kind: MessageKind::EdgeEvent,
        version: 1,
        json: include_str!("../released/edge_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::QualityEvent,
        version: 2,
        json: include_str!("../released/quality_event/v2.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::EdgeEvent,
        version: 2,
        json: include_str!("../released/edge_event/v2.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::EdgeEvent,
        version: 3,
        json: include_str!("../released/edge_event/v3.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::ManufacturingEvent,
        version: 1,
        json: include_str!("../released/manufacturing_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::InferenceEvent,
        version: 1,
        json: include_str!("../released/inference_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::SystemEvent,
        version: 1,
        json: include_str!("../released/system_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::InspectionEvent,
        version: 1,
        json: include_str!("../released/inspection_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::QualityEvent,
        version: 1,
        json: include_str!("../released/quality_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::AuditEvent,
        version: 1,
        json: include_str!("../released/audit_event/v1.avsc"),
    },
    ReleasedSchema {
        kind: MessageKind::AuditEvent,
        version: 2,
        json: include_str!("../released/audit_event/v2.avsc"),
    },
];

/// A compiled schema and its CRC-64-AVRO fingerprint (little-endian, as single-object encoding writes it).
pub struct Compiled {
    /// The parsed schema.
    pub schema: Schema,
    /// Fingerprint of the Parsing Canonical Form as the Avro specification defines it ([`crate::canonical`]):
    /// what this build writes, and what Java, fastavro and other readers compute.
    pub fingerprint: [u8; 8],
    /// The fingerprint builds before 2026-12 wrote: apache-avro's canonical form, which keeps primitives with
    /// a logical type as objects (AVRO-4004). Still read, never written.
    pub legacy_fingerprint: [u8; 8],
    /// The self-contained JSON, e.g. for registering with a schema registry.
    pub json: String,
}

/// Current schemas plus every released writer schema, indexed by fingerprint.
pub struct Contract {
    current: HashMap<MessageKind, Compiled>,
    writers: HashMap<[u8; 8], (MessageKind, Schema)>,
}

static GLOBAL: LazyLock<Contract> = LazyLock::new(|| {
    Contract::load().unwrap_or_else(|e| panic!("the bundled event contract is broken: {e}"))
});

impl Contract {
    /// The contract compiled into this binary. Bundled schemas are checked by this crate's tests,
    /// so failing here is a build defect, not an input problem.
    pub fn global() -> &'static Contract {
        &GLOBAL
    }

    /// Compiles the bundled sources and released versions.
    pub fn load() -> Result<Contract, SchemaError> {
        let mut library = HashMap::new();
        let mut roots = HashMap::new();
        for (stem, text) in SOURCES {
            let json: Value = serde_json::from_str(text).map_err(|e| bad(stem, e))?;
            let name = full_name(&json).ok_or_else(|| bad(stem, "the record has no name"))?;
            library.insert(name, json.clone());
            roots.insert(*stem, json);
        }
        let mut current = HashMap::new();
        for kind in MessageKind::ALL {
            let root = &roots[kind.file_stem()];
            let json = serde_json::to_string_pretty(&compose(root, &library))
                .map_err(|e| bad(kind.name(), e))?;
            current.insert(kind, compile(kind.name(), json)?);
        }
        let mut writers = HashMap::new();
        for released in RELEASED {
            let label = format!("{} v{}", released.kind.name(), released.version);
            let compiled = compile(&label, released.json.to_owned())?;
            writers.insert(
                compiled.legacy_fingerprint,
                (released.kind, compiled.schema.clone()),
            );
            writers.insert(compiled.fingerprint, (released.kind, compiled.schema));
        }
        Ok(Contract { current, writers })
    }

    /// The schema this build writes for `kind` and reads older versions into.
    pub fn current(&self, kind: MessageKind) -> &Compiled {
        &self.current[&kind]
    }

    /// The kind and fingerprint of a schema given as JSON text, e.g. the one a schema registry returns for
    /// the id in a Confluent-framed record: with them a reader decodes the body by the released (or current)
    /// writer schema it is, exactly as it would a single-object message. Comparison is by fingerprint of the
    /// Parsing Canonical Form, so docs and formatting may differ from the bundled text.
    pub fn identify(&self, json: &str) -> Result<(MessageKind, [u8; 8]), SchemaError> {
        let unknown = |reason: String| SchemaError::UnknownSchema { reason };
        let compiled =
            compile("a registry's schema", json.to_owned()).map_err(|e| unknown(e.to_string()))?;
        let fingerprint = compiled.fingerprint;
        if let Some((kind, _)) = self.writers.get(&fingerprint) {
            return Ok((*kind, fingerprint));
        }
        self.current
            .iter()
            .find(|(_, current)| current.fingerprint == fingerprint)
            .map(|(kind, _)| (*kind, fingerprint))
            .ok_or_else(|| {
                unknown(format!(
                    "fingerprint {} is no released version of any message kind",
                    fingerprint
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                ))
            })
    }

    /// The kind whose current schema has this fingerprint (either form): what this build writes with it.
    pub fn current_kind(&self, fingerprint: &[u8; 8]) -> Option<MessageKind> {
        self.current
            .iter()
            .find(|(_, compiled)| compiled.is(fingerprint))
            .map(|(kind, _)| *kind)
    }

    /// The released writer schema with this fingerprint, if it is one of `kind`'s.
    pub fn writer(&self, kind: MessageKind, fingerprint: &[u8; 8]) -> Option<&Schema> {
        match self.writers.get(fingerprint) {
            Some((k, schema)) if *k == kind => Some(schema),
            _ => None,
        }
    }
}

impl Compiled {
    /// Whether `fingerprint` names this schema, in the conformant or the legacy form.
    pub fn is(&self, fingerprint: &[u8; 8]) -> bool {
        self.fingerprint == *fingerprint || self.legacy_fingerprint == *fingerprint
    }
}

fn compile(label: &str, json: String) -> Result<Compiled, SchemaError> {
    let schema = Schema::parse_str(&json).map_err(|e| bad(label, e))?;
    let value: Value = serde_json::from_str(&json).map_err(|e| bad(label, e))?;
    let fingerprint = crate::canonical::fingerprint(&value).map_err(|e| bad(label, e))?;
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let legacy_fingerprint: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| bad(label, "fingerprint is not 8 bytes"))?;
    Ok(Compiled {
        schema,
        fingerprint,
        legacy_fingerprint,
        json,
    })
}

fn bad(name: &str, reason: impl std::fmt::Display) -> SchemaError {
    SchemaError::BadBundledSchema {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}
