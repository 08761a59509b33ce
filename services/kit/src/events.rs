//! The event bus: at-least-once delivery with consumer groups. Redis Streams in production
//! (consumer groups, acknowledgement, claiming the stale pending entries of a crashed consumer);
//! in-process for the embedded default. Events only wake consumers and share work: the durable
//! logs in the databases stay the source of truth, so a consumer that misses an event catches up
//! from the log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::watch;

pub use chargemesh_proto::common::v1::EventEnvelope;

/// The stream field that carries the encoded envelope.
const FIELD: &str = "e";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("malformed event {0}")]
    Malformed(String),
}

impl From<redis::RedisError> for BusError {
    fn from(err: redis::RedisError) -> Self {
        BusError::Unavailable(err.to_string())
    }
}

/// A delivered event; acknowledge it once handled, or it is delivered again.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub envelope: EventEnvelope,
    /// Claimed from a consumer that did not acknowledge it in time.
    pub redelivered: bool,
}

#[tonic::async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Appends an event to a topic; returns its id.
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<String, BusError>;
    /// Appends several events in order, in one round trip where the bus allows.
    async fn publish_all(&self, topic: &str, envelopes: &[EventEnvelope]) -> Result<(), BusError> {
        for e in envelopes {
            self.publish(topic, e).await?;
        }
        Ok(())
    }
    /// Joins consumer `group` as `consumer`: every group sees every event published after the
    /// group was made; within a group each event goes to one consumer.
    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn Subscription>, BusError>;
    /// Marks `key` used for `ttl`: `true` when nobody sharing the bus used it within that time.
    /// Replay protection for an edge whose clients may reach any replica.
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, BusError>;
}

#[tonic::async_trait]
pub trait Subscription: Send {
    /// The next event, waiting for one.
    async fn next(&mut self) -> Result<Delivery, BusError>;
    async fn ack(&mut self, id: &str) -> Result<(), BusError>;
}

pub type SharedBus = Arc<dyn EventBus>;

/// A new envelope with a fresh time-ordered id, carrying the current trace context.
pub fn envelope(
    source: &str,
    operator_id: &str,
    kind: &str,
    payload: Vec<u8>,
    at: chrono::DateTime<chrono::Utc>,
) -> EventEnvelope {
    EventEnvelope {
        id: uuid::Uuid::now_v7().to_string(),
        time: Some(crate::time::to_timestamp(at)),
        source: source.to_owned(),
        operator_id: operator_id.to_owned(),
        r#type: kind.to_owned(),
        payload,
        traceparent: crate::telemetry::current_traceparent(),
    }
}

/// Records how long a delivered event waited on the bus since it was raised (the bus lag).
fn observe_lag(topic: &str, delivery: &Delivery) {
    let Some(raised) = delivery
        .envelope
        .time
        .as_ref()
        .and_then(crate::time::from_timestamp)
    else {
        return;
    };
    let waited = (chrono::Utc::now() - raised).num_milliseconds().max(0) as f64 / 1000.0;
    crate::metrics::metrics()
        .bus_lag
        .get_or_create(&crate::metrics::TopicLabels {
            topic: topic.to_owned(),
        })
        .observe(waited);
}

/// How long an unacknowledged delivery stays with its consumer before another may claim it.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);

// ---- in-process ----

/// The embedded default: topics in memory, trimmed to the newest `capacity` events.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    capacity: usize,
    claim_idle: Duration,
    used: Arc<Mutex<UsedKeys>>,
}

/// Keys marked by [`EventBus::first_use`], each until it expires; expired ones are dropped
/// whenever the map has doubled since the last sweep, so it holds what is live and no more.
#[derive(Debug, Default)]
struct UsedKeys {
    until: HashMap<String, Instant>,
    sweep_at: usize,
}

impl UsedKeys {
    fn first_use(&mut self, key: &str, ttl: Duration, now: Instant) -> bool {
        if self.until.len() >= self.sweep_at {
            self.until.retain(|_, until| *until > now);
            self.sweep_at = (self.until.len() * 2).max(1024);
        }
        match self.until.get_mut(key) {
            Some(until) if *until > now => false,
            Some(until) => {
                *until = now + ttl;
                true
            }
            None => {
                self.until.insert(key.to_owned(), now + ttl);
                true
            }
        }
    }
}

#[derive(Debug)]
struct Topic {
    /// Number of events trimmed from the front; event `n` is at `events[n - base]`.
    base: u64,
    events: VecDeque<EventEnvelope>,
    groups: HashMap<String, Group>,
    published: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Group {
    next: u64,
    /// Delivered, not yet acknowledged: event number -> (consumer, delivered at).
    pending: BTreeMap<u64, (String, Instant)>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::with_limits(100_000, DEFAULT_CLAIM_IDLE)
    }

    pub fn with_limits(capacity: usize, claim_idle: Duration) -> Self {
        Self {
            topics: Arc::new(Mutex::new(HashMap::new())),
            capacity: capacity.max(1),
            claim_idle,
            used: Arc::new(Mutex::new(UsedKeys::default())),
        }
    }

    fn with_topic<R>(&self, topic: &str, f: impl FnOnce(&mut Topic) -> R) -> R {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let t = topics.entry(topic.to_owned()).or_insert_with(|| Topic {
            base: 0,
            events: VecDeque::new(),
            groups: HashMap::new(),
            published: watch::channel(0).0,
        });
        f(t)
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

#[tonic::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<String, BusError> {
        let capacity = self.capacity;
        Ok(self.with_topic(topic, |t| {
            t.events.push_back(envelope.clone());
            while t.events.len() > capacity {
                t.events.pop_front();
                t.base += 1;
            }
            let number = t.base + t.events.len() as u64 - 1;
            t.published.send_replace(number + 1);
            number.to_string()
        }))
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let wake = self.with_topic(topic, |t| {
            let end = t.base + t.events.len() as u64;
            t.groups.entry(group.to_owned()).or_insert_with(|| Group {
                next: end,
                pending: BTreeMap::new(),
            });
            t.published.subscribe()
        });
        Ok(Box::new(InProcessSubscription {
            bus: self.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            wake,
        }))
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, BusError> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        Ok(used.first_use(key, ttl, Instant::now()))
    }
}

struct InProcessSubscription {
    bus: InProcessBus,
    topic: String,
    group: String,
    consumer: String,
    wake: watch::Receiver<u64>,
}

impl InProcessSubscription {
    fn take(&self) -> Option<Delivery> {
        let claim_idle = self.bus.claim_idle;
        self.bus.with_topic(&self.topic, |t| {
            let base = t.base;
            let group = t.groups.get_mut(&self.group)?;
            // Claim a stale delivery of another consumer first.
            let stale = group
                .pending
                .iter()
                .find(|(n, (owner, at))| {
                    *owner != self.consumer && at.elapsed() >= claim_idle && **n >= base
                })
                .map(|(n, _)| *n);
            let (number, redelivered) = match stale {
                Some(n) => (n, true),
                None => {
                    group.next = group.next.max(base);
                    if group.next >= base + t.events.len() as u64 {
                        return None;
                    }
                    group.next += 1;
                    (group.next - 1, false)
                }
            };
            group
                .pending
                .insert(number, (self.consumer.clone(), Instant::now()));
            let envelope = t.events.get((number - base) as usize)?.clone();
            Some(Delivery {
                id: number.to_string(),
                envelope,
                redelivered,
            })
        })
    }
}

#[tonic::async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            self.wake.borrow_and_update();
            if let Some(delivery) = self.take() {
                observe_lag(&self.topic, &delivery);
                return Ok(delivery);
            }
            // Wake on a publish, or in time to claim stale deliveries.
            let _ = tokio::time::timeout(
                self.bus.claim_idle.min(Duration::from_secs(1)),
                self.wake.changed(),
            )
            .await;
        }
    }

    async fn ack(&mut self, id: &str) -> Result<(), BusError> {
        let number: u64 = id.parse().map_err(|_| BusError::Malformed(id.to_owned()))?;
        self.bus.with_topic(&self.topic, |t| {
            if let Some(g) = t.groups.get_mut(&self.group) {
                g.pending.remove(&number);
            }
        });
        Ok(())
    }
}

// ---- Redis Streams ----

/// Redis Streams: `XADD` with approximate trimming, consumer groups with `XREADGROUP`, `XACK`,
/// and `XAUTOCLAIM` of entries idle longer than the claim time.
#[derive(Clone)]
pub struct RedisBus {
    client: redis::Client,
    publisher: redis::aio::ConnectionManager,
    prefix: String,
    max_len: usize,
    claim_idle: Duration,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisBus {
    /// Connects; every topic becomes the stream `<prefix><topic>`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        Self::connect_with(url, prefix, 1_000_000, DEFAULT_CLAIM_IDLE).await
    }

    pub async fn connect_with(
        url: &str,
        prefix: &str,
        max_len: usize,
        claim_idle: Duration,
    ) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let publisher = redis::aio::ConnectionManager::new(client.clone()).await?;
        Ok(Self {
            client,
            publisher,
            prefix: prefix.to_owned(),
            max_len,
            claim_idle,
        })
    }

    fn key(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }
}

#[tonic::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<String, BusError> {
        let mut conn = self.publisher.clone();
        let id: String = redis::cmd("XADD")
            .arg(self.key(topic))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(envelope.encode_to_vec())
            .query_async(&mut conn)
            .await?;
        Ok(id)
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        // A dedicated connection: its blocking reads must not wait behind, or time out like,
        // ordinary commands.
        let blocking = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&blocking)
            .await?;
        let key = self.key(topic);
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(err) = created
            && err.code() != Some("BUSYGROUP")
        {
            return Err(err.into());
        }
        Ok(Box::new(RedisSubscription {
            conn,
            dead_letters: self.key(DEAD_LETTER_TOPIC),
            key,
            topic: topic.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            claim_idle: self.claim_idle,
            last_claim: None,
            buffer: VecDeque::new(),
        }))
    }
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, BusError> {
        let mut conn = self.publisher.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}once:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}

/// The stream events no consumer could read are parked in (`<prefix>dead-letter`), with the
/// topic, group and entry id they came from, for an SRE to look at.
pub const DEAD_LETTER_TOPIC: &str = "dead-letter";

struct RedisSubscription {
    conn: redis::aio::MultiplexedConnection,
    key: String,
    dead_letters: String,
    topic: String,
    group: String,
    consumer: String,
    claim_idle: Duration,
    last_claim: Option<Instant>,
    buffer: VecDeque<Delivery>,
}

fn decode(entry: &redis::streams::StreamId, redelivered: bool) -> Result<Delivery, BusError> {
    let bytes: Vec<u8> = match entry.map.get(FIELD) {
        Some(value) => {
            redis::from_redis_value_ref(value).map_err(|_| BusError::Malformed(entry.id.clone()))?
        }
        None => return Err(BusError::Malformed(entry.id.clone())),
    };
    let envelope = EventEnvelope::decode(bytes.as_slice())
        .map_err(|_| BusError::Malformed(entry.id.clone()))?;
    Ok(Delivery {
        id: entry.id.clone(),
        envelope,
        redelivered,
    })
}

impl RedisSubscription {
    async fn claim(&mut self) -> Result<(), BusError> {
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(64)
            .query_async(&mut self.conn)
            .await?;
        for entry in &reply.claimed {
            match decode(entry, true) {
                Ok(d) => self.buffer.push_back(d),
                Err(_) => self.park(entry).await?,
            }
        }
        Ok(())
    }

    /// Moves an entry this consumer cannot read to the dead-letter stream and acknowledges it,
    /// so it neither blocks the group nor comes back.
    async fn park(&mut self, entry: &redis::streams::StreamId) -> Result<(), BusError> {
        let payload: Vec<u8> = entry
            .map
            .get(FIELD)
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .unwrap_or_default();
        let _: String = redis::cmd("XADD")
            .arg(&self.dead_letters)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("topic")
            .arg(&self.topic)
            .arg("group")
            .arg(&self.group)
            .arg("entry_id")
            .arg(&entry.id)
            .arg(FIELD)
            .arg(payload)
            .query_async(&mut self.conn)
            .await?;
        let _: i64 = redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&entry.id)
            .query_async(&mut self.conn)
            .await?;
        crate::metrics::metrics()
            .bus_dead_letters
            .get_or_create(&crate::metrics::TopicLabels {
                topic: self.topic.clone(),
            })
            .inc();
        tracing::warn!(topic = %self.topic, group = %self.group, entry = %entry.id, "an unreadable event parked in the dead-letter stream");
        Ok(())
    }

    async fn read(&mut self) -> Result<(), BusError> {
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(32)
            .arg("BLOCK")
            .arg(self.claim_idle.min(Duration::from_secs(2)).as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.conn)
            .await?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in &key.ids {
                match decode(entry, false) {
                    Ok(d) => self.buffer.push_back(d),
                    Err(_) => self.park(entry).await?,
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Subscription for RedisSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if let Some(d) = self.buffer.pop_front() {
                observe_lag(&self.topic, &d);
                return Ok(d);
            }
            if self
                .last_claim
                .is_none_or(|at| at.elapsed() >= self.claim_idle / 2)
            {
                self.last_claim = Some(Instant::now());
                self.claim().await?;
                if !self.buffer.is_empty() {
                    continue;
                }
            }
            self.read().await?;
        }
    }

    async fn ack(&mut self, id: &str) -> Result<(), BusError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(id)
            .query_async(&mut self.conn)
            .await?;
        Ok(())
    }
}

/// The bus for a URL: `redis://...` for Redis Streams, empty for in-process.
pub async fn connect(url: &str, prefix: &str) -> Result<SharedBus, BusError> {
    if url.is_empty() {
        Ok(Arc::new(InProcessBus::new()))
    } else {
        Ok(Arc::new(RedisBus::connect(url, prefix).await?))
    }
}

/// Publishes off the caller's path: `offer` never waits for the bus. Events queue (up to
/// `capacity` batches) and a task publishes them in order, retrying with backoff while the bus
/// is unreachable; when the queue is full the newest batch is dropped and counted
/// (`chargemesh_bus_dropped_events`). For events that only wake consumers who can read the truth
/// elsewhere (a log) — never for an event that is the only copy of anything.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: tokio::sync::mpsc::Sender<(&'static str, Vec<EventEnvelope>)>,
}

impl Publisher {
    pub fn spawn(bus: SharedBus, capacity: usize) -> Self {
        let (queue, mut rx) =
            tokio::sync::mpsc::channel::<(&'static str, Vec<EventEnvelope>)>(capacity.max(1));
        tokio::spawn(async move {
            let backlog = &crate::metrics::metrics().bus_backlog;
            while let Some((topic, events)) = rx.recv().await {
                let mut delay = Duration::from_millis(100);
                loop {
                    match bus.publish_all(topic, &events).await {
                        Ok(()) => break,
                        Err(error) => {
                            tracing::warn!(%error, topic, waiting = rx.len(), "bus unreachable; events wait");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                backlog.dec_by(events.len() as i64);
            }
        });
        Self { queue }
    }

    /// Queues events for publishing; never waits.
    pub fn offer(&self, topic: &'static str, events: Vec<EventEnvelope>) {
        if events.is_empty() {
            return;
        }
        let n = events.len() as i64;
        match self.queue.try_send((topic, events)) {
            Ok(()) => {
                crate::metrics::metrics().bus_backlog.inc_by(n);
            }
            Err(_) => {
                crate::metrics::metrics()
                    .bus_dropped
                    .get_or_create(&crate::metrics::TopicLabels {
                        topic: topic.to_owned(),
                    })
                    .inc_by(n as u64);
                tracing::warn!(
                    topic,
                    dropped = n,
                    "the bus queue is full; events dropped, consumers will poll"
                );
            }
        }
    }
}
