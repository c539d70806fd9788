//! Listings, one page at a time: no reply grows with the number of
//! transfers, users or alerts. A page ends at `limit` entries or at
//! [`limits::PAGE_BYTES`] of encoded entries, whichever comes first, and
//! carries the cursor of the next.

use exhibit_proto::frame::{AlertInfo, Cursor, Page, TransferInfo, TransferList, TransferState, UserInfo};
use exhibit_proto::{limits, TransferId, UserId};
use serde::Serialize;

use crate::core::policy;
use crate::core::records::{AlertRecord, TransferRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::Mailbox;
use crate::state::State;

/// Entries of one page and the cursor of the next (`None`: the end).
pub type Paged<T> = (Vec<T>, Option<Cursor>);

fn limit_of(page: &Page) -> usize {
    match page.limit {
        0 => limits::MAX_PAGE as usize,
        n => n.min(limits::MAX_PAGE) as usize,
    }
}

fn cursor_bytes(page: &Page) -> Result<Option<&[u8]>, ServerError> {
    match &page.after {
        Some(c) if c.0.len() > limits::MAX_CURSOR => Err(ServerError::BadRequest("cursor too long".into())),
        Some(c) => Ok(Some(c.0.as_slice())),
        None => Ok(None),
    }
}

/// Fill a page from `fetch(after, n)` (records in key order after a key),
/// keeping those `keep` accepts, shown by `show`; `key` is a record's
/// position as cursor bytes.
fn fill<R, I: Serialize>(
    mut after: Option<Vec<u8>>,
    limit: usize,
    mut fetch: impl FnMut(Option<&[u8]>, usize) -> Result<Vec<R>, ServerError>,
    keep: impl Fn(&R) -> bool,
    key: impl Fn(&R) -> Vec<u8>,
    show: impl Fn(&R) -> I,
) -> Result<Paged<I>, ServerError> {
    let mut out = vec![];
    let mut bytes = 0usize;
    loop {
        let batch = fetch(after.as_deref(), limit)?;
        let done = batch.len() < limit;
        for r in &batch {
            if keep(r) {
                let item = show(r);
                let size = exhibit_proto::sign::encode(&item).len();
                if !out.is_empty() && bytes + size > limits::PAGE_BYTES {
                    return Ok((out, after.map(Cursor)));
                }
                bytes += size;
                out.push(item);
            }
            after = Some(key(r));
            if out.len() >= limit {
                return Ok((out, after.map(Cursor)));
            }
        }
        if done {
            return Ok((out, None));
        }
    }
}

/// An admin read a page of a listing: every page is audited, so a cursor
/// made up to skip the first page still leaves a trace.
fn audit_page(s: &State, me: &UserId, what: &str, page: &Page, now: u64) -> Result<(), ServerError> {
    let what = match &page.after {
        None => what.to_owned(),
        Some(c) => format!("{what} (after {})", hex::encode(&c.0)),
    };
    crate::app::audit::admin_read(s, me, &what, now)
}

fn transfer_id(b: &[u8]) -> Result<TransferId, ServerError> {
    Ok(TransferId(b.try_into().map_err(|_| ServerError::BadRequest("not a transfer cursor".into()))?))
}

/// One page of transfers: the caller's inbox (sealed ones) or outbox, or
/// (admins, every page audited) every transfer or the overdue ones.
pub fn transfers(
    s: &State,
    caller: &UserRecord,
    list: TransferList,
    page: &Page,
    now: u64,
) -> Result<Paged<TransferInfo>, ServerError> {
    if matches!(list, TransferList::All { .. }) {
        policy::require_admin(caller)?;
    }
    let limit = limit_of(page);
    let after = cursor_bytes(page)?.map(transfer_id).transpose()?;
    let r = s.meta.read()?;
    let me = &caller.user;
    let start = after.map(|t| t.as_bytes().to_vec());
    let key = |t: &TransferRecord| t.transfer.as_bytes().to_vec();
    let show = |t: &TransferRecord| {
        let mut info = t.info();
        info.unit_acks = crate::app::units::acks(r.as_ref(), t).unwrap_or_default();
        info
    };
    // A member's inbox holds their units' too.
    let boxes: Vec<UserId> = match list {
        TransferList::Inbox => std::iter::once(me.clone())
            .chain(r.units()?.into_iter().filter(|u| u.unit.has_member(me)).map(|u| u.unit.unit))
            .collect(),
        _ => vec![me.clone()],
    };
    match list {
        TransferList::Inbox | TransferList::Outbox => {
            let which = if list == TransferList::Inbox { Mailbox::Inbox } else { Mailbox::Outbox };
            let fetch = |a: Option<&[u8]>, n| {
                let after = a.map(transfer_id).transpose()?;
                let mut all = vec![];
                for b in &boxes {
                    all.extend(r.mailbox(which, b, after.as_ref(), n)?);
                }
                all.sort_by_key(|t: &TransferRecord| t.transfer);
                all.dedup_by_key(|t| t.transfer);
                all.truncate(n);
                Ok(all)
            };
            fill(
                start,
                limit,
                fetch,
                |t| list == TransferList::Outbox || t.state != TransferState::Uploading,
                key,
                show,
            )
        }
        TransferList::Approvals => {
            let fetch =
                |a: Option<&[u8]>, n| r.mailbox(Mailbox::Approvals, me, a.map(transfer_id).transpose()?.as_ref(), n);
            fill(start, limit, fetch, |t| t.state == TransferState::AwaitingApproval, key, show)
        }
        TransferList::All { overdue } => {
            audit_page(s, me, "transfers", page, now)?;
            let fetch = |a: Option<&[u8]>, n| r.transfers(a.map(transfer_id).transpose()?.as_ref(), n);
            fill(start, limit, fetch, |t| !overdue || policy::is_overdue(t, now), key, show)
        }
    }
}

/// Admin: one page of users (audited).
pub fn users(s: &State, caller: &UserRecord, page: &Page, now: u64) -> Result<Paged<UserInfo>, ServerError> {
    policy::require_admin(caller)?;
    audit_page(s, &caller.user, "users", page, now)?;
    let start = cursor_bytes(page)?.map(<[u8]>::to_vec);
    let r = s.meta.read()?;
    let user_id = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|u| UserId::new(u).ok())
            .ok_or_else(|| ServerError::BadRequest("not a user cursor".into()))
    };
    let fetch = |a: Option<&[u8]>, n| r.users(a.map(user_id).transpose()?.as_ref(), n);
    fill(start, limit_of(page), fetch, |_| true, |u| u.user.as_str().as_bytes().to_vec(), UserRecord::info)
}

/// Admin: one page of alerts, newest first (audited).
pub fn alerts(
    s: &State,
    caller: &UserRecord,
    all: bool,
    page: &Page,
    now: u64,
) -> Result<Paged<AlertInfo>, ServerError> {
    policy::require_admin(caller)?;
    audit_page(s, &caller.user, "alerts", page, now)?;
    let id = |b: &[u8]| -> Result<u64, ServerError> {
        Ok(u64::from_be_bytes(b.try_into().map_err(|_| ServerError::BadRequest("not an alert cursor".into()))?))
    };
    let start = cursor_bytes(page)?.map(<[u8]>::to_vec);
    let r = s.meta.read()?;
    let fetch = |a: Option<&[u8]>, n| r.alerts(a.map(id).transpose()?, all, n);
    fill(start, limit_of(page), fetch, |_| true, |a| a.info.id.to_be_bytes().to_vec(), |a| a.info.clone())
}

/// Every page of a listing, for the requests that predate paging (their
/// one reply must still fit a frame, as before).
pub fn all<T>(mut page: impl FnMut(&Page) -> Result<Paged<T>, ServerError>) -> Result<Vec<T>, ServerError> {
    let mut out = vec![];
    let mut p = Page::first();
    loop {
        let (items, next) = page(&p)?;
        out.extend(items);
        match next {
            Some(c) => p = Page::after(c),
            None => return Ok(out),
        }
    }
}

/// Every record of a listing, reading pages of `fetch(after the last one
/// read)` until one comes back empty.
fn every<T>(mut fetch: impl FnMut(Option<&T>) -> Result<Vec<T>, ServerError>) -> Result<Vec<T>, ServerError> {
    let mut out = vec![];
    loop {
        let page = fetch(out.last())?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Every transfer, read a page at a time (the dashboard and metrics, which
/// are not bound by a frame).
pub fn every_transfer(s: &State) -> Result<Vec<TransferRecord>, ServerError> {
    let r = s.meta.read()?;
    every(|last: Option<&TransferRecord>| r.transfers(last.map(|t| &t.transfer), limits::MAX_PAGE as usize))
}

/// Every user, read a page at a time.
pub fn every_user(s: &State) -> Result<Vec<UserRecord>, ServerError> {
    let r = s.meta.read()?;
    every(|last: Option<&UserRecord>| r.users(last.map(|u| &u.user), limits::MAX_PAGE as usize))
}

/// Every alert (open ones only unless `all`), newest first.
pub fn every_alert(s: &State, all: bool) -> Result<Vec<AlertRecord>, ServerError> {
    let r = s.meta.read()?;
    every(|last: Option<&AlertRecord>| r.alerts(last.map(|a| a.info.id), all, limits::MAX_PAGE as usize))
}
