//! Building a pipeline: its clients, the subscription, and in exactly-once mode the proof that the broker
//! commits transactions.

use super::*;

impl Pipeline {
    /// Creates the clients and subscribes to the input topic. In exactly-once mode it first proves that the
    /// broker commits transactions, and fails with [`PipelineError::Transactions`] if not.
    pub async fn new(config: BridgeConfig, registry: &mut Registry) -> Result<Self, PipelineError> {
        let (producer, transactional_id) = match config.delivery.mode {
            DeliveryMode::AtLeastOnce => {
                let producer =
                    produce::producer(&config.kafka).map_err(|source| PipelineError::Client {
                        client: "producer",
                        source,
                    })?;
                (producer, None)
            }
            DeliveryMode::ExactlyOnce => {
                let id = transaction::transactional_id(
                    &config.bridge.group_id,
                    &config.delivery.instance_id,
                );
                let producer = transaction::start(&config.kafka, &id, &config.topics.state).await?;
                tracing::info!(
                    transactional_id = id,
                    "exactly-once delivery: transactions work"
                );
                (producer, Some(id))
            }
        };
        let reload = Arc::new(AtomicBool::new(true));
        let rebalances = Rebalances::default();
        let in_flight = InFlight::default();
        let consumer = consume::consumer(
            &config,
            reload.clone(),
            rebalances.clone(),
            in_flight.clone(),
        )
        .map_err(|source| PipelineError::Client {
            client: "consumer",
            source,
        })?;
        consumer
            .subscribe(&[&config.topics.input])
            .map_err(|source| PipelineError::Subscribe {
                topic: config.topics.input.clone(),
                source,
            })?;
        let windows = Mutex::new(Windows::new(config.quality.windows.clone()));
        let metrics = DedupMetrics::register(registry);
        let ledger = Ledger::new(
            &config.bridge.group_id,
            config.delivery.window_ms(),
            metrics,
        );
        Ok(Self {
            consumer,
            producer: RwLock::new(Arc::new(producer)),
            config,
            windows,
            metrics: BridgeMetrics::unregistered(),
            ledger: Mutex::new(ledger),
            reload,
            rebalances,
            transactional_id,
            wire: WireFormat::single_object(),
            in_flight,
        })
    }

    /// Frames the outputs with `wire` (the configured wire format) instead of single-object encoding.
    pub fn with_wire_format(mut self, wire: WireFormat) -> Self {
        self.wire = wire;
        self
    }

    /// Counts into `metrics` (those of the process registry) instead of unregistered ones.
    pub fn with_metrics(mut self, metrics: BridgeMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}
