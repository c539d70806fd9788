//! Listings read page by page: the server answers each listing request
//! with one page and the cursor of the next, so no reply has to fit one
//! frame however long the listing grows.

use exhibit_proto::frame::{Cursor, Page, Request, Response};
use exhibit_proto::limits;

use super::Conn;
use crate::error::ClientError;

/// Every entry of a listing from `page` on: `ask` makes the request for one
/// page, `take` reads its entries and the next cursor out of the answer
/// (an error, [`super::unexpected`], for an answer of another kind). Follows `next` until the server
/// says there is no more.
pub async fn all_pages<T>(
    conn: &Conn,
    page: Page,
    ask: impl Fn(Page) -> Request,
    take: impl Fn(Response) -> Result<(Vec<T>, Option<Cursor>), ClientError>,
) -> Result<Vec<T>, ClientError> {
    let (ask, take) = (&ask, &take);
    collect(page, |page| async move { take(conn.request(&ask(page)).await?) }).await
}

/// [`all_pages`] over any source of pages: `one` answers one page.
async fn collect<T, F, Fut>(mut page: Page, mut one: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<Cursor>), ClientError>>,
{
    let mut out = vec![];
    loop {
        let sent = page.after.clone();
        let (entries, next) = one(page).await?;
        out.extend(entries);
        let Some(next) = next else { return Ok(out) };
        check_cursor(sent.as_ref(), &next)?;
        page = Page::after(next);
    }
}

/// A server's `next` must move on: one it was just given back would have
/// the client ask for the same page for ever.
fn check_cursor(sent: Option<&Cursor>, next: &Cursor) -> Result<(), ClientError> {
    if next.0.len() > limits::MAX_CURSOR {
        return Err(exhibit_proto::ProtoError::TooLarge {
            what: "listing cursor",
            got: next.0.len() as u64,
            max: limits::MAX_CURSOR as u64,
        }
        .into());
    }
    if sent == Some(next) {
        return Err(ClientError::Stream("the server repeated a listing page (its next cursor did not move)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three pages of a listing of 0..7, three to a page, the cursor the
    /// last number held.
    fn page_of(page: Page) -> Result<(Vec<u64>, Option<Cursor>), ClientError> {
        let from = page.after.and_then(|c| c.as_seq()).map_or(0, |s| s + 1);
        let entries: Vec<u64> = (from..7).take(3).collect();
        let next = entries.last().filter(|&&l| l < 6).map(|&l| Cursor::seq(l));
        Ok((entries, next))
    }

    #[tokio::test]
    async fn every_page_is_read_and_each_later_one_asked_after_the_last_next() {
        let mut asked = vec![];
        let all = collect(Page::first(), |p| {
            asked.push(p.after.as_ref().and_then(Cursor::as_seq));
            std::future::ready(page_of(p))
        })
        .await
        .unwrap();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert_eq!(asked, [None, Some(2), Some(5)]);
        // Started after a position, as custody continues its first reply.
        let rest = collect(Page::after(Cursor::seq(3)), |p| std::future::ready(page_of(p))).await.unwrap();
        assert_eq!(rest, [4, 5, 6]);
    }

    #[tokio::test]
    async fn a_server_that_repeats_a_page_is_refused_not_followed_for_ever() {
        let stuck = |_| std::future::ready(Ok((vec![1u8], Some(Cursor::seq(1)))));
        assert!(collect(Page::first(), stuck).await.is_err());
    }

    #[test]
    fn a_cursor_must_move_on_and_stay_short() {
        let c = Cursor::seq(7);
        assert!(check_cursor(None, &c).is_ok());
        assert!(check_cursor(Some(&Cursor::seq(6)), &c).is_ok());
        assert!(check_cursor(Some(&c), &c).is_err());
        assert!(check_cursor(None, &Cursor(vec![0; limits::MAX_CURSOR + 1])).is_err());
    }
}
