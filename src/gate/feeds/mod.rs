//! The topics the gate reads besides `topics.outbound`, each a loop of its
//! own: the consent table's feed ([`consent`]), opt-out replies forwarded to
//! the consent topic ([`replies`]), deferred texts released when due
//! ([`release`]), and the changelog restored into partition state on
//! assignment ([`restore`]).

pub mod consent;
pub mod release;
pub mod replies;
pub mod restore;
