//! Sharding across replicas, kube-state-metrics style: each replica polls only the targets
//! whose stable hash falls in its shard. A leaf: imports nothing of the crate.
//!
//! The hash is 64-bit FNV-1a over the bytes of `upstream`, a 0 byte, `kind`, a 0 byte and
//! the target id, as configured; the shard is that hash modulo the number of shards. It
//! depends on nothing but those bytes (no random seed, no platform word size), so a target
//! stays on its shard across restarts, versions and machines, and only moves when the number
//! of shards changes.

/// This replica's shard: `index` of `total` (0 <= index < total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Default for Shard {
    /// One shard that holds every target.
    fn default() -> Self {
        Shard { index: 0, total: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--total-shards must be at least 1")]
    NoShards,
    #[error("--shard {index} is not below --total-shards {total}")]
    OutOfRange { index: u32, total: u32 },
    #[error("--shard auto: host name {host:?} does not end in -<number> (a StatefulSet pod name)")]
    NoOrdinal { host: String },
}

impl Shard {
    pub fn new(index: u32, total: u32) -> Result<Self, ShardError> {
        if total == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= total {
            return Err(ShardError::OutOfRange { index, total });
        }
        Ok(Shard { index, total })
    }

    /// `--shard auto`: the ordinal at the end of a StatefulSet pod's host name
    /// (`backup-exporter-2` -> 2).
    pub fn from_host_name(host: &str, total: u32) -> Result<Self, ShardError> {
        let ordinal = host
            .rsplit_once('-')
            .map(|(_, n)| n)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| ShardError::NoOrdinal {
                host: host.to_string(),
            })?;
        Shard::new(ordinal, total)
    }

    /// Whether this shard polls the target.
    pub fn owns(&self, upstream: &str, kind: &str, target: &str) -> bool {
        self.total <= 1 || shard_of(upstream, kind, target, self.total) == self.index
    }

    /// Whether this shard exports what is said once per upstream (the inventory of its
    /// listings): the shard of the upstream with the fixed kind and target
    /// [`UPSTREAM_KEY`].
    pub fn owns_upstream(&self, upstream: &str) -> bool {
        self.owns(upstream, UPSTREAM_KEY, UPSTREAM_KEY)
    }

    pub fn is_sharded(&self) -> bool {
        self.total > 1
    }
}

/// The kind and target hashed with an upstream's name for what one shard says of the whole
/// upstream; no target kind is empty, so it never collides with a target.
pub const UPSTREAM_KEY: &str = "";

/// The shard of a target among `total`.
pub fn shard_of(upstream: &str, kind: &str, target: &str, total: u32) -> u32 {
    let hash = fnv1a(&[upstream.as_bytes(), kind.as_bytes(), target.as_bytes()]);
    (hash % u64::from(total.max(1))) as u32
}

/// 64-bit FNV-1a over the parts, each followed by a 0 byte.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for &byte in part.iter().chain(std::iter::once(&0u8)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_hash_is_fixed_forever() {
        // Pinned values: changing the hash would move every target of every fleet.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), fnv1a(&[b"a"]));
        assert_eq!(
            fnv1a(&[b"zdm-prod", b"server", b"server-01"]),
            0x2eb3ac6355201286
        );
        assert_eq!(shard_of("zdm-prod", "server", "server-01", 3), 0);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn auto_reads_the_pod_ordinal() {
        assert_eq!(
            Shard::from_host_name("backup-exporter-2", 3),
            Ok(Shard { index: 2, total: 3 })
        );
        assert!(matches!(
            Shard::from_host_name("backup-exporter-3", 3),
            Err(ShardError::OutOfRange { .. })
        ));
        for bad in ["backup-exporter", "host", "x-", "x-1a", ""] {
            assert!(Shard::from_host_name(bad, 3).is_err(), "{bad}");
        }
        assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
    }

    proptest! {
        #[test]
        fn every_upstream_has_exactly_one_inventory_shard(upstream in "\\PC{1,24}", total in 1u32..16) {
            let owners = (0..total)
                .filter(|&i| Shard::new(i, total).unwrap().owns_upstream(&upstream))
                .count();
            prop_assert_eq!(owners, 1);
        }

        #[test]
        fn every_target_has_exactly_one_shard(
            upstream in "[a-z-]{1,12}", target in "\\PC{0,24}", total in 1u32..16,
        ) {
            let owners = (0..total)
                .filter(|&i| Shard::new(i, total).unwrap().owns(&upstream, "server", &target))
                .count();
            prop_assert_eq!(owners, 1);
        }
    }
}
