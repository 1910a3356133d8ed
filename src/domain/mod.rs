//! The shared words of rosterd: what a district is and how it is named
//! ([`tenant`]), an email address ([`email`]), the data-safety settings that
//! decide what an import may change ([`safety`]), a school's IDs ([`school`]), the import window
//! ([`window`]), an import's report ([`report`]), a district's last nights
//! at a glance ([`trend`]), the passwords an import generated
//! ([`credentials`]), and how any value a district sent is shown safely
//! ([`text`]).
//!
//! The ground floor of the crate: no I/O beyond formatting, no SQL, no
//! configuration, and nothing of the crate outside this folder, so every other
//! module can use these words and none of them can form a circle through here.

pub mod credentials;
pub mod email;
pub mod report;
pub mod safety;
pub mod school;
pub mod tenant;
pub mod text;
pub mod trend;
pub mod window;
