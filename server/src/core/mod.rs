//! The rules, with no IO: what a transfer may do next and what follows
//! from it ([`lifecycle`]), who may see or do what ([`policy`]), and when
//! and how to alert ([`alerts`]), what strangers (connections without a
//! certificate) may hold and what wrong enrolment codes cost them
//! ([`strangers`]). Time is always passed in. A transition
//! changes a record in memory and returns the [`lifecycle::Effect`]s for
//! `app` to apply in the same metadata transaction.

pub mod alerts;
pub mod integrity;
pub mod lifecycle;
pub mod policy;
pub mod records;
pub mod strangers;
pub mod throttle;
