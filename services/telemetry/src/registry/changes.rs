//! What an announced registry change means to a cached operator index: which station or pile it
//! touches, the changes waiting to be read, and how what was read patches the index. Pure: the
//! reads and the cache are the caller's.

use std::collections::HashSet;

use crate::domain::{OperatorIndex, PileRef, StationRef};

/// A station or pile of an operator's index, by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entity {
    Station(String),
    Pile(String),
}

/// What a change of the registry touches in an operator's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// Something the index does not hold (the operator's own record, equipment, certificates,
    /// tariffs, id tokens).
    Nothing,
    One(Entity),
    /// Unknown: the whole index is read again.
    Everything,
}

/// What a `RegistryChanged` event touches, from its entity type and id.
pub fn touch(entity_type: &str, entity_id: &str) -> Touch {
    match (entity_type, entity_id) {
        ("station", id) if !id.is_empty() => Touch::One(Entity::Station(id.to_owned())),
        ("pile", id) if !id.is_empty() => Touch::One(Entity::Pile(id.to_owned())),
        ("operator" | "equipment" | "certificate" | "tariff" | "id_token", _) => Touch::Nothing,
        _ => Touch::Everything,
    }
}

/// The changes of one operator not yet read into its cached index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    entities: HashSet<Entity>,
    everything: bool,
}

impl Dirty {
    pub fn of(touch: Touch) -> Self {
        let mut dirty = Self::default();
        dirty.add(touch);
        dirty
    }

    pub fn add(&mut self, touch: Touch) {
        match touch {
            Touch::Nothing => {}
            Touch::One(entity) if !self.everything => {
                self.entities.insert(entity);
            }
            Touch::One(_) => {}
            Touch::Everything => {
                self.everything = true;
                self.entities.clear();
            }
        }
    }

    pub fn merge(&mut self, other: Dirty) {
        if other.everything {
            self.add(Touch::Everything);
        } else {
            for entity in other.entities {
                self.add(Touch::One(entity));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.everything && self.entities.is_empty()
    }

    /// The entities to read one by one, or `None` when the whole index must be read again.
    pub fn into_entities(self) -> Option<HashSet<Entity>> {
        (!self.everything).then_some(self.entities)
    }
}

/// What the registry holds now for an entity: `None` when it holds nothing by that id.
#[derive(Debug, Clone)]
pub enum Found {
    Station(String, Option<StationRef>),
    Pile(String, Option<PileRef>),
}

/// The stations the found piles stand at that neither the index nor the found stations hold:
/// a pile whose station's announcement was lost or not yet read brings its station.
pub fn missing_stations(index: &OperatorIndex, found: &[Found]) -> HashSet<String> {
    let read: HashSet<&str> = found
        .iter()
        .filter_map(|f| match f {
            Found::Station(id, _) => Some(id.as_str()),
            Found::Pile(..) => None,
        })
        .collect();
    found
        .iter()
        .filter_map(|f| match f {
            Found::Pile(_, Some(pile)) => Some(pile.station_id.as_str()),
            _ => None,
        })
        .filter(|station| !index.stations.contains_key(*station) && !read.contains(station))
        .map(str::to_owned)
        .collect()
}

/// The index with what was read in place of what it held.
pub fn patched(index: &OperatorIndex, found: &[Found]) -> OperatorIndex {
    let mut next = index.clone();
    for f in found {
        match f {
            Found::Station(id, Some(station)) => {
                next.stations.insert(id.clone(), station.clone());
            }
            Found::Station(id, None) => {
                next.stations.remove(id);
            }
            Found::Pile(id, Some(pile)) => {
                next.piles.insert(id.clone(), pile.clone());
            }
            Found::Pile(id, None) => {
                next.piles.remove(id);
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pile(station: &str, retired: bool) -> PileRef {
        PileRef {
            station_id: station.into(),
            connectors: vec!["C1".into()],
            rated_power_kw: 60.0,
            retired,
        }
    }

    fn station() -> StationRef {
        StationRef {
            area_code: "330602".into(),
            filed: false,
        }
    }

    #[test]
    fn stations_and_piles_are_touched_one_by_one_and_what_the_index_lacks_not_at_all() {
        assert_eq!(touch("pile", "P1"), Touch::One(Entity::Pile("P1".into())));
        assert_eq!(
            touch("station", "S1"),
            Touch::One(Entity::Station("S1".into()))
        );
        for kind in ["operator", "equipment", "certificate", "tariff", "id_token"] {
            assert_eq!(touch(kind, "X"), Touch::Nothing, "{kind}");
        }
        // A kind this build does not know, or a pile without its id, could be anything.
        assert_eq!(touch("connector", "C1"), Touch::Everything);
        assert_eq!(touch("pile", ""), Touch::Everything);
    }

    #[test]
    fn everything_absorbs_the_entities_before_and_after_it() {
        let mut dirty = Dirty::of(Touch::One(Entity::Pile("P1".into())));
        dirty.add(Touch::Nothing);
        assert_eq!(
            dirty.clone().into_entities(),
            Some(HashSet::from([Entity::Pile("P1".into())]))
        );
        dirty.merge(Dirty::of(Touch::Everything));
        dirty.add(Touch::One(Entity::Station("S1".into())));
        assert!(!dirty.is_empty());
        assert_eq!(dirty.into_entities(), None);
        assert!(Dirty::of(Touch::Nothing).is_empty());
    }

    #[test]
    fn what_was_read_replaces_or_removes_what_the_index_held() {
        let mut index = OperatorIndex::default();
        index.stations.insert("S1".into(), station());
        index.piles.insert("P1".into(), pile("S1", false));
        index.piles.insert("P2".into(), pile("S1", false));
        let next = patched(
            &index,
            &[
                Found::Pile("P1".into(), Some(pile("S1", true))),
                Found::Pile("P2".into(), None),
                Found::Pile("P3".into(), Some(pile("S1", false))),
                Found::Station("S2".into(), Some(station())),
            ],
        );
        assert!(next.piles["P1"].retired);
        assert!(!next.piles.contains_key("P2"));
        assert!(next.piles.contains_key("P3"));
        assert!(next.stations.contains_key("S2"));
        // The index it was patched from is as it was: readers may hold it.
        assert!(!index.piles["P1"].retired);
        assert!(index.piles.contains_key("P2"));
    }

    #[test]
    fn a_pile_at_a_station_nobody_read_brings_its_station() {
        let mut index = OperatorIndex::default();
        index.stations.insert("S1".into(), station());
        let found = vec![
            Found::Pile("P1".into(), Some(pile("S1", false))),
            Found::Pile("P2".into(), Some(pile("S2", false))),
            Found::Pile("P3".into(), Some(pile("S3", false))),
            Found::Station("S3".into(), Some(station())),
            Found::Pile("P4".into(), None),
        ];
        assert_eq!(
            missing_stations(&index, &found),
            HashSet::from(["S2".to_owned()])
        );
    }
}
