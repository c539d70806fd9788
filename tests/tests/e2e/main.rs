//! End-to-end tests: the real exhibitd and exhibit library entry points on
//! 127.0.0.1 with real QUIC, TLS, redb and files in a temp dir.
#![allow(clippy::unwrap_used)]

mod alerts;
mod auth;
mod browser;
mod corruption;
mod custody;
mod disclosure;
mod enrolment;
mod extract;
mod failover;
mod fixture;
mod hostile;
mod keylog;
mod lifecycle;
mod listing;
mod multinode;
mod notices;
mod offline;
mod onward;
mod postgres;
mod reach;
mod receipts;
mod s3;
mod subset;
mod tamper;
mod text;
mod tlog;
mod transfer;
mod units;
mod upgrade;
mod web;
mod witness;
