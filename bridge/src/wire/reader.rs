//! Reading the bridge's outputs back in either wire format, for `audit verify` and other tools.
//!
//! A Confluent-framed record names its writer schema by id only. The reader fetches each id once
//! (`GET /schemas/ids/{id}`), finds which released schema of the contract that text is (by fingerprint,
//! [`Contract::identify`]), and hands the record to the contract's decoder as the single-object record it
//! would have been, so that one decoder, with its schema resolution, serves both formats.

use std::collections::HashMap;
use std::sync::Mutex;

use linegate_schemas::{AvroMessage, Contract, SchemaError};

use super::framing::{self, Framing};
use super::{RegistryClient, RegistryError, RegistryMetrics};
use crate::config::SchemaRegistryConfig;

/// Why one record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A Confluent-framed record, read without a registry to look its id up.
    #[error("Confluent wire format (schema id {id}), but no [schema_registry] url is configured to look the id up")]
    NoRegistry {
        /// The id in the record.
        id: u32,
    },
    /// The id's schema could not be used (unknown to the registry, or no schema of this contract).
    #[error("schema id {id}: {reason}")]
    Schema {
        /// The id in the record.
        id: u32,
        /// Why.
        reason: String,
    },
    /// The record itself does not decode.
    #[error(transparent)]
    Decode(#[from] SchemaError),
}

/// Decodes records of either framing; learns the Confluent ids it meets through [`SchemaReader::learn`].
pub struct SchemaReader {
    client: Option<RegistryClient>,
    /// Per schema id: the writer fingerprint it stands for, or why it cannot be read.
    known: Mutex<HashMap<u32, Result<[u8; 8], String>>>,
}

impl SchemaReader {
    /// A reader with the configured registry (or none: then only single-object records decode).
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RegistryError> {
        Ok(Self {
            client: RegistryClient::new(config, RegistryMetrics::default())?,
            known: Mutex::default(),
        })
    }

    /// Looks up the schema ids of the Confluent-framed `values` not seen before. An id the registry does
    /// not know or whose schema is not the contract's makes its records undecodable (reported by
    /// [`SchemaReader::decode`]); a registry that cannot be reached is an error, because every record would
    /// then look foreign.
    pub async fn learn<'a>(
        &self,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), RegistryError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let mut ids: Vec<u32> = values
            .into_iter()
            .filter_map(|value| match framing::framing(value) {
                Framing::Confluent(id) => Some(id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if self.lock().contains_key(&id) {
                continue;
            }
            let found = match client.schema(id).await {
                Ok(text) => Contract::global()
                    .identify(&text)
                    .map(|(_, fingerprint)| fingerprint)
                    .map_err(|source| RegistryError::ForeignSchema { id, source }.to_string()),
                Err(RegistryError::UnknownId { id }) => {
                    Err(RegistryError::UnknownId { id }.to_string())
                }
                Err(error) => return Err(error),
            };
            self.lock().insert(id, found);
        }
        Ok(())
    }

    /// Decodes one record of kind `M`, single-object or Confluent-framed (with its id learnt).
    pub fn decode<M: AvroMessage>(&self, value: &[u8]) -> Result<M, ReadError> {
        let Framing::Confluent(id) = framing::framing(value) else {
            return Ok(linegate_schemas::decode(value)?);
        };
        if self.client.is_none() {
            return Err(ReadError::NoRegistry { id });
        }
        let fingerprint = match self.lock().get(&id) {
            Some(Ok(fingerprint)) => *fingerprint,
            Some(Err(reason)) => {
                return Err(ReadError::Schema {
                    id,
                    reason: reason.clone(),
                })
            }
            None => {
                return Err(ReadError::Schema {
                    id,
                    reason: "not looked up (call learn first)".to_owned(),
                })
            }
        };
        Ok(linegate_schemas::decode(&framing::to_single_object(
            value,
            &fingerprint,
        ))?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Result<[u8; 8], String>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
