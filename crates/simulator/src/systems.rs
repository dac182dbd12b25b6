//! The registry: the one list of the simulated systems. Everything else reaches a system
//! through its options ([`Setup`]) and its running state (`System`), never by name.
//!
//! Adding a system: its folder `src/<system>/` (declared `pub mod <system>;` in `lib.rs`),
//! whose `Options` implements [`Setup`], and one line in the `registry!` list below.

use super::system::Setup;

/// Gathers each listed system's `Options` (`src/<system>/`) into [`Systems`], one field
/// per system, in the order given: the order of the flags in `--help`, of the upstreams in
/// `--demo`'s configuration and in which the systems claim requests (the first whose
/// routes match answers).
macro_rules! registry {
    ($($system:ident,)+) => {
        /// Each system's own options: its command-line flags and credentials.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct Systems {
            $(
                #[doc = concat!("The options of [`", stringify!($system), "`](crate::", stringify!($system), ").")]
                #[command(flatten)]
                pub $system: super::$system::Options,
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
