//! One module per thing a user does. Each connects through
//! [`crate::session`], and returns data: printing is the front doors' job.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod cases;
pub mod custody;
pub mod custody_pdf;
pub mod details;
pub mod directory;
pub mod enrol;
pub mod fetch;
pub mod forward;
pub mod heads;
pub mod keylog;
pub mod listing;
pub mod manifest;
pub mod onward;
pub mod orgs;
pub mod receipt;
pub mod renew;
pub mod resume;
pub mod send;
pub mod show;
pub mod units;
pub mod witness;
