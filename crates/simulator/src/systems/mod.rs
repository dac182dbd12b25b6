//! The registry: the one list of the simulated systems. Everything else reaches a system
//! through its options (`Setup`) and its running state (`System`), never by name.
//!
//! Adding a system: its folder `src/systems/<system>/`, whose `Options` implements `Setup`,
//! and one line in the `registry!` list below (which declares the folder's module).

use crate::system::Setup;

/// Declares each listed system's module (`src/systems/<system>/`) and gathers its `Options`
/// into [`Systems`], one field per system, in the order given: the order of the flags in `--help`, of the upstreams in
/// `--demo`'s configuration and in which the systems claim requests (the first whose
/// routes match answers).
macro_rules! registry {
    ($($system:ident,)+) => {
        $(pub mod $system;)+

        /// Each system's own options: its command-line flags and credentials.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct Systems {
            $(
                #[doc = concat!("The options of [`", stringify!($system), "`](crate::systems::", stringify!($system), ").")]
                #[command(flatten)]
                pub $system: $system::Options,
            )+
        }

        impl Systems {
            /// Every system's options, in the registry's order.
            pub(crate) fn all(&self) -> Vec<&dyn Setup> {
                vec![$(&self.$system),+]
            }

            /// Every system's options, in the registry's order, to change.
            pub(crate) fn all_mut(&mut self) -> Vec<&mut dyn Setup> {
                vec![$(&mut self.$system),+]
            }
        }
    };
}

registry! {
    zdm,
    scp,
    azure,
}
