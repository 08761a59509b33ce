use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

use crate::domain::{PileRef, StationRef};

/// A registry of one operator, counting its reads; whole reads see the registry as it was when
/// they began, and wait while `hold` has no permit.
#[derive(Debug)]
struct Source {
    /// Each pile with its station and whether it is retired.
    piles: Mutex<BTreeMap<&'static str, (&'static str, bool)>>,
    stations: Mutex<HashSet<&'static str>>,
    whole: AtomicUsize,
    /// Whole reads begun, answered or still held.
    begun: AtomicUsize,
    points: AtomicUsize,
    /// Point reads fail while set.
    down: AtomicBool,
    hold: tokio::sync::Semaphore,
}

fn pile_ref(station: &str, retired: bool) -> PileRef {
    PileRef {
        station_id: station.into(),
        connectors: vec!["C1".into()],
        rated_power_kw: 7.0,
        retired,
    }
}

fn station_ref() -> StationRef {
    StationRef {
        area_code: "330602".into(),
        filed: false,
    }
}

impl Source {
    fn new(piles: &[&'static str]) -> Arc<Self> {
        Arc::new(Self {
            piles: Mutex::new(piles.iter().map(|p| (*p, ("S1", false))).collect()),
            stations: Mutex::new(HashSet::from(["S1"])),
            whole: AtomicUsize::new(0),
            begun: AtomicUsize::new(0),
            points: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            hold: tokio::sync::Semaphore::new(1_000),
        })
    }

    fn add(&self, pile: &'static str, station: &'static str) {
        lock(&self.stations).insert(station);
        lock(&self.piles).insert(pile, (station, false));
    }

    fn retire(&self, pile: &'static str) {
        if let Some(p) = lock(&self.piles).get_mut(pile) {
            p.1 = true;
        }
    }

    /// Whole reads wait from now on.
    fn block(&self) {
        self.hold.forget_permits(usize::MAX);
    }

    fn release(&self) {
        self.hold.add_permits(1_000);
    }

    fn whole(&self) -> usize {
        self.whole.load(Ordering::SeqCst)
    }

    fn points(&self) -> usize {
        self.points.load(Ordering::SeqCst)
    }

    fn point(&self) -> Result<(), Error> {
        self.points.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("the registry is down".into()));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl IndexSource for Source {
    async fn operator_index(&self, _operator: &str) -> Result<Option<OperatorIndex>, Error> {
        let mut index = OperatorIndex::default();
        for (pile, (station, retired)) in lock(&self.piles).iter() {
            index
                .piles
                .insert((*pile).to_owned(), pile_ref(station, *retired));
        }
        for station in lock(&self.stations).iter() {
            index.stations.insert((*station).to_owned(), station_ref());
        }
        self.begun.fetch_add(1, Ordering::SeqCst);
        let _permit = self
            .hold
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("closed".into()))?;
        self.whole.fetch_add(1, Ordering::SeqCst);
        Ok(Some(index))
    }

    async fn station_ref(&self, _operator: &str, id: &str) -> Result<Option<StationRef>, Error> {
        self.point()?;
        Ok(lock(&self.stations).contains(id).then(station_ref))
    }

    async fn pile_ref(&self, _operator: &str, id: &str) -> Result<Option<PileRef>, Error> {
        self.point()?;
        Ok(lock(&self.piles)
            .get(id)
            .map(|(station, retired)| pile_ref(station, *retired)))
    }
}

fn registry(source: Arc<Source>, ttl: Duration) -> Arc<Registry> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let nowhere = chargemesh_kit::tls::mesh_channel("https://127.0.0.1:1", Arc::new(client))
        .expect("channel");
    Arc::new(Registry::with_source(
        AssetClient::new(nowhere),
        source,
        ttl,
    ))
}

/// Waits (bounded, as a guard against a hang) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

/// Waits until no whole read, queued change or patch round is under way.
async fn settled(registry: &Registry) {
    until("settling", || {
        let queue = lock(&registry.queue);
        lock(&registry.refreshing).is_empty()
            && lock(&registry.reading).is_empty()
            && queue.dirty.is_empty()
            && *registry.rounds.borrow() == queue.taken
    })
    .await;
}

fn cached(registry: &Registry) -> Arc<OperatorIndex> {
    registry.cached("OP").expect("cached").index
}

async fn known(registry: &Arc<Registry>, pile: &str) -> Arc<OperatorIndex> {
    registry
        .index("OP", pile)
        .await
        .expect("read")
        .expect("known")
}

fn pile(id: &str) -> Touch {
    Touch::One(Entity::Pile(id.into()))
}

#[tokio::test]
async fn a_stale_index_answers_at_once_and_is_replaced_by_one_background_read() {
    let source = Source::new(&["P1"]);
    // Every index is stale at once.
    let registry = registry(source.clone(), Duration::ZERO);
    assert!(known(&registry, "P1").await.piles.contains_key("P1"));
    source.block();
    source.add("P2", "S1");
    for _ in 0..3 {
        let stale = tokio::time::timeout(Duration::from_secs(10), known(&registry, "P1"))
            .await
            .expect("a stale index must not wait for the registry");
        assert!(!stale.piles.contains_key("P2"));
    }
    source.release();
    settled(&registry).await;
    // One read at first, one in the background for the three stale answers.
    assert_eq!(source.whole(), 2);
    assert!(cached(&registry).piles.contains_key("P2"));
}

#[tokio::test]
async fn a_pile_the_index_lacks_is_read_alone_not_with_its_whole_operator() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    known(&registry, "P1").await;
    source.add("P2", "S1");
    assert!(known(&registry, "P2").await.piles.contains_key("P2"));
    // A pile the registry does not hold either: one read, and the index as it was.
    assert!(!known(&registry, "P9").await.piles.contains_key("P9"));
    assert_eq!((source.whole(), source.points()), (1, 2));
}

#[tokio::test]
async fn an_announced_change_is_patched_in_without_reading_the_operator_whole() {
    let source = Source::new(&["P1", "P2"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    let before = known(&registry, "P1").await;
    source.retire("P1");
    lock(&source.piles).remove("P2");
    source.add("P3", "S2");
    for p in ["P1", "P2", "P3"] {
        registry.note("OP", pile(p));
    }
    // Changes the index does not hold cost nothing.
    registry.note("OP", Touch::Nothing);
    settled(&registry).await;
    let after = cached(&registry);
    assert!(after.piles["P1"].retired);
    assert!(!after.piles.contains_key("P2"));
    // A new pile at a new station brings the station, whose announcement may come later.
    assert_eq!(after.piles["P3"].station_id, "S2");
    assert!(after.stations.contains_key("S2"));
    assert!(
        !before.piles["P1"].retired,
        "an index a reader holds changed"
    );
    assert_eq!((source.whole(), source.points()), (1, 4));
}

#[tokio::test]
async fn changes_of_an_operator_nobody_asked_for_are_not_read() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    registry.note("OP", pile("P1"));
    settled(&registry).await;
    assert_eq!((source.whole(), source.points()), (0, 0));
    assert!(registry.cached("OP").is_none());
}

#[tokio::test]
async fn a_change_announced_during_a_background_read_is_read_after_it_is_kept() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::ZERO);
    known(&registry, "P1").await;
    source.block();
    // Starts the background read, which sees the registry before P2 and waits.
    known(&registry, "P1").await;
    until("the background read", || {
        source.begun.load(Ordering::SeqCst) == 2
    })
    .await;
    source.add("P2", "S1");
    registry.note("OP", pile("P2"));
    source.release();
    settled(&registry).await;
    assert!(cached(&registry).piles.contains_key("P2"));
    assert_eq!((source.whole(), source.points()), (2, 1));
}

#[tokio::test]
async fn a_change_announced_during_a_first_read_is_read_after_it_is_kept() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    source.block();
    let asking = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.index("OP", "P1").await })
    };
    until("the first read", || {
        source.begun.load(Ordering::SeqCst) == 1
    })
    .await;
    source.retire("P1");
    registry.note("OP", pile("P1"));
    source.release();
    let answered = asking.await.expect("task").expect("read").expect("known");
    // Answered with what was read; kept, then patched.
    assert!(!answered.piles["P1"].retired);
    settled(&registry).await;
    assert!(cached(&registry).piles["P1"].retired);
    assert_eq!((source.whole(), source.points()), (1, 1));
}

#[tokio::test]
async fn an_announcement_it_cannot_place_reads_the_operator_again_in_the_background() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    known(&registry, "P1").await;
    source.add("P2", "S1");
    source.block();
    registry.note("OP", Touch::Everything);
    // The index serves while the operator is read again.
    let serving = tokio::time::timeout(Duration::from_secs(10), known(&registry, "P1"))
        .await
        .expect("the cached index must not wait for the registry");
    assert!(!serving.piles.contains_key("P2"));
    source.release();
    settled(&registry).await;
    assert!(cached(&registry).piles.contains_key("P2"));
    assert_eq!((source.whole(), source.points()), (2, 0));
}

#[tokio::test]
async fn a_patch_the_registry_cannot_answer_leaves_the_index_serving_until_a_whole_read() {
    let source = Source::new(&["P1"]);
    let registry = registry(source.clone(), Duration::from_secs(3600));
    known(&registry, "P1").await;
    source.down.store(true, Ordering::SeqCst);
    source.retire("P1");
    registry.note("OP", pile("P1"));
    settled(&registry).await;
    assert!(!cached(&registry).piles["P1"].retired);
    // Expired: the next report is answered at once and reads the operator again behind it.
    known(&registry, "P1").await;
    settled(&registry).await;
    assert!(cached(&registry).piles["P1"].retired);
    assert_eq!(source.whole(), 2);
}
