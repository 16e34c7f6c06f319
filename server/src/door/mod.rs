//! Doors: dialects over the one core. The chat port and the strict mailbox door live in
//! [`crate::session`] and [`crate::connection`]; [`irc`] is the IRC door.

pub mod irc;
