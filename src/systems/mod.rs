//! The upstream systems, one folder each (its config keys, auth, wire structs, mapping,
//! source and their tests), and the registry: the one list of them. The rest of the crate
//! names no system; it reaches them only through [`ALL`] (an upstream's `type`) and the
//! [`UpstreamConfig`](crate::config::upstream::UpstreamConfig) each upstream resolves to.
//!
//! Adding a system: its folder and one line in the `registry!` list below, which declares
//! the folder's module and puts its `DEF` in [`ALL`]; its `System` and `TargetKind`s declare
//! ranks that follow the list's order (the test below checks).

use crate::config::upstream::SystemDef;

/// Declares each system's module (`src/systems/<name>/`) and lists its descriptor in [`ALL`],
/// in the order given: one line per system, so the list cannot name a module that is not
/// declared, nor declare one it forgets.
macro_rules! registry {
    ($($system:ident,)+) => {
        $(pub mod $system;)+

        /// Every system, in the order their series sort.
        pub static ALL: &[&dyn SystemDef] = &[$(&$system::DEF),+];
    };
}

registry! {
    zdm,
    scp,
    azure,
}

/// The system whose upstreams have `type: <name>`.
pub fn by_type(name: &str) -> Option<&'static dyn SystemDef> {
    ALL.iter()
        .copied()
        .find(|system| system.type_name() == name)
}

/// The `type` names, for messages: `a, b, c`.
pub fn type_names() -> String {
    ALL.iter()
        .map(|system| system.type_name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series sort by system, then by kind within an upstream: the ranks each system
    /// declares must follow the registry's order and never repeat.
    #[test]
    fn ranks_follow_the_registry_and_are_unique() {
        let systems: Vec<u8> = ALL.iter().map(|s| s.system().rank()).collect();
        assert!(
            systems.windows(2).all(|w| w[0] < w[1]),
            "system ranks {systems:?}"
        );
        let kinds: Vec<u8> = ALL
            .iter()
            .flat_map(|s| s.kinds().iter().map(|k| k.rank()))
            .collect();
        assert!(
            kinds.windows(2).all(|w| w[0] < w[1]),
            "kind ranks {kinds:?}"
        );
    }

    #[test]
    fn names_are_unique_and_found_by_type() {
        for (i, system) in ALL.iter().enumerate() {
            let found = by_type(system.type_name()).map(|s| s.system());
            assert_eq!(found, Some(system.system()));
            for other in &ALL[i + 1..] {
                assert_ne!(system.type_name(), other.type_name());
                assert_ne!(system.system().as_str(), other.system().as_str());
            }
        }
        assert!(by_type("tape").is_none());
    }

    /// Today's `/metrics` order: zdm < scp < azure, server < backup_job < recovery_job <
    /// recovery_server < replication_job < backup < backup_histories < vault.
    #[test]
    fn the_order_of_today_is_kept() {
        let systems: Vec<&str> = ALL.iter().map(|s| s.system().as_str()).collect();
        assert_eq!(systems, ["zdm", "scp", "azure"]);
        let kinds: Vec<&str> = ALL
            .iter()
            .flat_map(|s| s.kinds().iter().map(|k| k.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                "server",
                "backup_job",
                "recovery_job",
                "recovery_server",
                "replication_job",
                "backup",
                "backup_histories",
                "vault"
            ]
        );
        assert_eq!(type_names(), "zdm, scp, azure");
    }
}
