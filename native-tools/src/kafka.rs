//! Kafka tools (pure-Rust `rskafka` client) against KAFKA_BOOTSTRAP_SERVERS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::{
    Client, ClientBuilder,
    error::{Error as KError, ProtocolError},
    partition::{Compression, OffsetAt, UnknownTopicHandling},
};
use rskafka::record::Record;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::limits::OutOfRange;
use crate::net::error_chain;

/// Why a Kafka tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// KAFKA_BOOTSTRAP_SERVERS is not set.
    #[error(
        "Kafka is not configured: KAFKA_BOOTSTRAP_SERVERS is not set (e.g. KAFKA_BOOTSTRAP_SERVERS=kafka:9092)"
    )]
    NotConfigured,
    /// No connection within the operation timeout.
    #[error("cannot connect to Kafka at {0}: timed out")]
    ConnectTimeout(String),
    /// The connection failed.
    #[error("cannot connect to Kafka at {brokers}: {}", error_chain(.error))]
    Connect {
        /// Bootstrap servers, comma-separated.
        brokers: String,
        /// The client error, shown with its sources.
        error: Box<KError>,
    },
    /// A Kafka request failed.
    #[error("kafka {what} failed: {}", error_chain(.error))]
    Request {
        /// The operation, e.g. "produce".
        what: &'static str,
        /// The client error, shown with its sources.
        error: Box<KError>,
    },
    /// An operation did not finish in time.
    #[error("kafka {what} timed out after {ms} ms")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The timeout.
        ms: u128,
    },
    /// A numeric argument is out of bounds.
    #[error(transparent)]
    Limit(#[from] OutOfRange),
    /// A produced value over the limit.
    #[error("value is {0} bytes; the limit is {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// A negative partition for kafka_produce.
    #[error("partition must be >= 0")]
    NegativePartition,
    /// A negative start offset for kafka_consume.
    #[error("offset must be >= 0 (got {0})")]
    NegativeOffset(i64),
    /// kafka_produce to a missing topic with auto-creation off.
    #[error(
        "kafka topic {0:?} does not exist (auto-creation disabled by KAFKA_AUTO_CREATE_TOPICS)"
    )]
    NoTopicNoAutoCreate(String),
    /// kafka_consume from a missing topic.
    #[error("kafka topic {0:?} does not exist")]
    NoTopic(String),
    /// kafka_consume from a missing partition.
    #[error("kafka topic {topic:?} has no partition {partition}")]
    NoPartition {
        /// Topic name.
        topic: String,
        /// Partition asked for.
        partition: i32,
    },
    /// The broker answered a produce without an offset.
    #[error("kafka produce returned no offset")]
    NoOffset,
    /// A start offset beyond the partition's range.
    #[error("offset {offset} is out of range for {topic}/{partition}")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// Topic name.
        topic: String,
        /// Partition.
        partition: i32,
    },
}

type Result<T, E = KafkaError> = std::result::Result<T, E>;

/// Default `max_messages` of kafka_consume.
pub const CONSUME_DEFAULT_MESSAGES: u32 = 10;
/// Upper bound of `max_messages`.
pub const CONSUME_MAX_MESSAGES: u32 = 1000;
/// Default `timeout_ms` of kafka_consume.
pub const CONSUME_DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Upper bound of kafka_consume `timeout_ms`.
pub const CONSUME_MAX_TIMEOUT_MS: u64 = 60_000;
/// Bound for connecting / metadata / produce operations.
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest value kafka_produce sends.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
const FETCH_MAX_BYTES: i32 = 4 * 1024 * 1024;

/// Kafka settings and the cached client.
pub struct Kafka {
    bootstrap: Option<Vec<String>>,
    auto_create: bool,
    client: Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("bootstrap", &self.bootstrap)
            .field("auto_create", &self.auto_create)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTopicsArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListTopicsResult {
    pub bootstrap_servers: Vec<String>,
    /// Topics sorted by name.
    pub topics: Vec<TopicInfo>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceArgs {
    /// Topic name. Missing topics are created with one partition unless KAFKA_AUTO_CREATE_TOPICS=false.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Message value (UTF-8 text, at most 1 MiB).
    pub value: String,
    /// Optional message key.
    pub key: Option<String>,
    /// Partition to write to (default 0).
    #[schemars(range(min = 0))]
    pub partition: Option<i32>,
    /// Optional message headers.
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProduceResult {
    pub topic: String,
    pub partition: i32,
    /// Offset assigned to the message.
    pub offset: i64,
    /// True when the topic was created by this call.
    pub topic_created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeArgs {
    /// Topic name.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Partition to read (default 0).
    #[schemars(range(min = 0))]
    pub partition: Option<i32>,
    /// Offset to start at (default: the earliest retained offset).
    #[schemars(range(min = 0))]
    pub offset: Option<i64>,
    /// Maximum messages to return (default 10, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    pub max_messages: Option<u32>,
    /// How long to wait for messages, in milliseconds (default 5000, at most 60000).
    #[schemars(range(min = 1, max = 60000))]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Message {
    pub offset: i64,
    /// Key as UTF-8 text (base64 when key_encoding is "base64"); absent when the message has no key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<String>,
    /// Value as UTF-8 text (base64 when value_encoding is "base64"); absent for null values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<String>,
    /// Record timestamp, RFC 3339.
    pub timestamp: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConsumeResult {
    pub topic: String,
    pub partition: i32,
    pub messages: Vec<Message>,
    /// Offset to pass next time to continue after the last returned message.
    pub next_offset: i64,
    /// Partition high watermark (offset of the next message to be written).
    pub high_watermark: i64,
}

fn encode(bytes: Vec<u8>) -> (String, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, None),
        Err(e) => (crate::text::base64(e.as_bytes()), Some("base64".into())),
    }
}

/// `map_err` adapter: a failed Kafka request of kind `what`.
fn kerr(what: &'static str) -> impl FnOnce(KError) -> KafkaError {
    move |error| KafkaError::Request {
        what,
        error: Box::new(error),
    }
}

async fn bounded<T>(
    what: &'static str,
    d: Duration,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| KafkaError::Timeout {
            what,
            ms: d.as_millis(),
        })?
}

fn is_unknown_topic(e: &KError) -> bool {
    matches!(
        e,
        KError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        }
    ) || e.to_string().contains("UnknownTopicOrPartition")
}

impl Kafka {
    /// From KAFKA_BOOTSTRAP_SERVERS and KAFKA_AUTO_CREATE_TOPICS.
    pub fn from_env() -> Self {
        let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok().and_then(|v| {
            let list: Vec<String> = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            (!list.is_empty()).then_some(list)
        });
        let auto_create = !matches!(
            std::env::var("KAFKA_AUTO_CREATE_TOPICS")
                .map(|v| v.to_ascii_lowercase())
                .as_deref(),
            Ok("false" | "0" | "no" | "off")
        );
        Self::new(bootstrap, auto_create)
    }

    /// A client for `bootstrap` (None: not configured); connects on first use.
    pub fn new(bootstrap: Option<Vec<String>>, auto_create: bool) -> Self {
        Self {
            bootstrap,
            auto_create,
            client: Mutex::new(None),
        }
    }

    /// The bootstrap servers, when configured.
    pub fn bootstrap(&self) -> Option<&[String]> {
        self.bootstrap.as_deref()
    }

    async fn client(&self) -> Result<Arc<Client>> {
        let Some(brokers) = &self.bootstrap else {
            return Err(KafkaError::NotConfigured);
        };
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let backoff = rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
            deadline: Some(Duration::from_secs(10)),
        };
        let build = ClientBuilder::new(brokers.clone())
            .client_id("native-tools")
            .backoff_config(backoff)
            .build();
        let c = tokio::time::timeout(OP_TIMEOUT, build)
            .await
            .map_err(|_| KafkaError::ConnectTimeout(brokers.join(",")))?
            .map_err(|error| KafkaError::Connect {
                brokers: brokers.join(","),
                error: Box::new(error),
            })?;
        let c = Arc::new(c);
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forget the cached client so the next call reconnects.
    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    async fn with_reset<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.reset().await;
        }
        r
    }

    /// The kafka_list_topics tool.
    pub async fn list_topics(&self) -> Result<ListTopicsResult> {
        let r = bounded("list_topics", OP_TIMEOUT, async {
            let c = self.client().await?;
            let mut topics: Vec<TopicInfo> = c
                .list_topics()
                .await
                .map_err(kerr("list_topics"))?
                .into_iter()
                .map(|t| TopicInfo {
                    name: t.name,
                    partitions: t.partitions.into_iter().collect(),
                })
                .collect();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(ListTopicsResult {
                bootstrap_servers: self.bootstrap.clone().unwrap_or_default(),
                topics,
            })
        })
        .await;
        self.with_reset(r).await
    }

    async fn topic_exists(&self, c: &Client, topic: &str) -> Result<bool> {
        Ok(c.list_topics()
            .await
            .map_err(kerr("list_topics"))?
            .iter()
            .any(|t| t.name == topic))
    }

    /// The kafka_produce tool.
    pub async fn produce(&self, a: ProduceArgs) -> Result<ProduceResult> {
        if a.value.len() > MAX_VALUE_BYTES {
            return Err(KafkaError::ValueTooLarge(a.value.len()));
        }
        let partition = a.partition.unwrap_or(0);
        if partition < 0 {
            return Err(KafkaError::NegativePartition);
        }
        let r = bounded("produce", OP_TIMEOUT, async {
            let c = self.client().await?;
            let mut topic_created = false;
            if !self.topic_exists(&c, &a.topic).await? {
                if !self.auto_create {
                    return Err(KafkaError::NoTopicNoAutoCreate(a.topic.clone()));
                }
                let ctl = c.controller_client().map_err(kerr("create_topic"))?;
                match ctl
                    .create_topic(a.topic.clone(), partition + 1, 1, 5_000)
                    .await
                {
                    Ok(()) => topic_created = true,
                    Err(e) if e.to_string().contains("TopicAlreadyExists") => {}
                    Err(e) => return Err(kerr("create_topic")(e)),
                }
            }
            let pc = c
                .partition_client(a.topic.clone(), partition, UnknownTopicHandling::Retry)
                .await
                .map_err(kerr("produce"))?;
            let record = Record {
                key: a.key.map(String::into_bytes),
                value: Some(a.value.into_bytes()),
                headers: a
                    .headers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect(),
                timestamp: rskafka::chrono::Utc::now(),
            };
            let offsets = pc
                .produce(vec![record], Compression::NoCompression)
                .await
                .map_err(kerr("produce"))?;
            let offset = offsets.first().copied().ok_or(KafkaError::NoOffset)?;
            Ok(ProduceResult {
                topic: a.topic,
                partition,
                offset,
                topic_created,
            })
        })
        .await;
        self.with_reset(r).await
    }

    /// The kafka_consume tool.
    pub async fn consume(&self, a: ConsumeArgs) -> Result<ConsumeResult> {
        let partition = crate::limits::arg("partition", a.partition, 0, 0, i32::MAX)?;
        if let Some(o) = a.offset
            && o < 0
        {
            return Err(KafkaError::NegativeOffset(o));
        }
        let max = crate::limits::arg(
            "max_messages",
            a.max_messages,
            CONSUME_DEFAULT_MESSAGES,
            1,
            CONSUME_MAX_MESSAGES,
        )? as usize;
        let timeout = Duration::from_millis(crate::limits::arg(
            "timeout_ms",
            a.timeout_ms,
            CONSUME_DEFAULT_TIMEOUT_MS,
            1,
            CONSUME_MAX_TIMEOUT_MS,
        )?);
        let started = Instant::now();
        // Setup (connect, metadata) is bounded separately so a short timeout_ms
        // still gets a chance to connect.
        let setup = bounded("consume", OP_TIMEOUT, async {
            let c = self.client().await?;
            if !self.topic_exists(&c, &a.topic).await? {
                return Err(KafkaError::NoTopic(a.topic.clone()));
            }
            let pc = c
                .partition_client(a.topic.clone(), partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| {
                    if is_unknown_topic(&e) {
                        KafkaError::NoPartition {
                            topic: a.topic.clone(),
                            partition,
                        }
                    } else {
                        kerr("consume")(e)
                    }
                })?;
            let start = match a.offset {
                Some(o) => o,
                None => pc
                    .get_offset(OffsetAt::Earliest)
                    .await
                    .map_err(kerr("get_offset"))?,
            };
            Ok((pc, start))
        })
        .await;
        let (pc, start) = self.with_reset(setup).await?;
        let deadline = started + timeout.max(Duration::from_millis(1));
        let mut messages: Vec<Message> = Vec::new();
        let mut next = start;
        let mut high_watermark = start;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || messages.len() >= max {
                break;
            }
            let wait_ms = remaining.as_millis().clamp(1, 1_000) as i32;
            let fetch = pc.fetch_records(next, 1..FETCH_MAX_BYTES, wait_ms);
            let r = match tokio::time::timeout(remaining + Duration::from_secs(2), fetch).await {
                Ok(r) => r,
                Err(_) => break,
            };
            let (records, hw) = match r {
                Ok(x) => x,
                Err(e) if e.to_string().contains("OffsetOutOfRange") => {
                    return Err(KafkaError::OffsetOutOfRange {
                        offset: next,
                        topic: a.topic,
                        partition,
                    });
                }
                Err(e) => return Err(kerr("fetch")(e)),
            };
            high_watermark = hw;
            for ro in records {
                if ro.offset < next {
                    continue;
                }
                if messages.len() >= max {
                    break;
                }
                next = ro.offset + 1;
                let (key, key_encoding) = match ro.record.key {
                    Some(k) => {
                        let (s, e) = encode(k);
                        (Some(s), e)
                    }
                    None => (None, None),
                };
                let (value, value_encoding) = match ro.record.value {
                    Some(v) => {
                        let (s, e) = encode(v);
                        (Some(s), e)
                    }
                    None => (None, None),
                };
                messages.push(Message {
                    offset: ro.offset,
                    key,
                    key_encoding,
                    value,
                    value_encoding,
                    timestamp: ro.record.timestamp.to_rfc3339(),
                    headers: ro
                        .record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect(),
                });
            }
            if next >= high_watermark && messages.len() >= max {
                break;
            }
        }
        Ok(ConsumeResult {
            topic: a.topic,
            partition,
            messages,
            next_offset: next,
            high_watermark,
        })
    }
}
