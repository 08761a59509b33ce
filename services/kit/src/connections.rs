//! The connections an edge holds by pile: a new connection of a pile replaces its old one,
//! which is told to close (a pile that reconnects before its old connection times out must not
//! be served twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The connections of this replica by pile: a new connection of a pile replaces its old one,
/// which is told to close.
#[derive(Debug, Default, Clone)]
pub struct Connections {
    inner: Arc<Mutex<Held>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Connections {
    /// Registers a connection of `key`, closing the one it replaces; the receiver turns true
    /// when this one is replaced in turn.
    pub fn enter(&self, key: &str) -> (u64, watch::Receiver<bool>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, old)) = map.insert(key.to_owned(), (id, tx)) {
            let _ = old.send(true);
        }
        (id, rx)
    }

    /// Forgets a connection that ended, unless it was replaced already.
    pub fn leave(&self, key: &str, id: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|(held, _)| *held == id) {
            map.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each pile's connection: its number and how it is told it was replaced.
type Held = HashMap<String, (u64, watch::Sender<bool>)>;
