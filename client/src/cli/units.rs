//! `exhibit units`, `exhibit unit …` and `exhibit admin unit …`.

use serde_json::json;

use super::args::{AdminUnitCommand, UnitCommand};
use super::{print, Out};
use crate::error::ClientError;
use crate::home::Home;
use crate::ops::units::{self, NewUnit, Shown, Upkept};

/// `exhibit units [--all]`.
pub(super) async fn list_cmd(home: &Home, o: Out, all: bool) -> Result<(), ClientError> {
    let (shown, done) = units::list(home, all).await?;
    if o.json {
        return print::json(&json!({"units": shown, "keys": done}));
    }
    say_done(&done);
    if shown.is_empty() {
        print::out(if all { "no units\n" } else { "you are in no unit\n" });
    }
    for u in &shown {
        print::out(&text(u));
    }
    Ok(())
}

/// `exhibit unit share ID`.
pub(super) async fn unit_cmd(home: &Home, o: Out, c: UnitCommand) -> Result<(), ClientError> {
    let UnitCommand::Share { unit } = c;
    let done = units::share(home, &unit).await?;
    if o.json {
        return print::json(&json!({"keys": done}));
    }
    if done.is_empty() {
        print::out(&format!("unit {unit}: every member holds its key; nothing to share\n"));
    }
    say_done(&done);
    Ok(())
}

/// `exhibit admin unit …`.
pub(super) async fn admin_cmd(home: &Home, o: Out, c: AdminUnitCommand) -> Result<(), ClientError> {
    let shown = match c {
        AdminUnitCommand::Add { id, org, name, ack, email } => {
            units::put(home, NewUnit { unit: id, org, name, ack, email }, false).await?
        }
        AdminUnitCommand::Members { id, add, remove } => units::members(home, id, add, remove).await?,
        AdminUnitCommand::List => return list_cmd(home, o, true).await,
    };
    if o.json {
        return print::json(&shown);
    }
    print::out(&text(&shown));
    Ok(())
}

/// `exhibit directory`, after the users: the units matching `query`.
pub(super) async fn directory(home: &Home, query: Option<&str>) -> Result<(), ClientError> {
    let (shown, _) = units::list(home, true).await?;
    let q = query.map(str::to_lowercase);
    let matching: Vec<&Shown> = shown
        .iter()
        .filter(|u| {
            q.as_ref().is_none_or(|q| u.unit.contains(q.as_str()) || u.name.to_lowercase().contains(q.as_str()))
        })
        .collect();
    if !matching.is_empty() {
        print::out("\nunits (send to one with --to UNIT):\n");
    }
    for u in matching {
        print::out(&text(u));
    }
    Ok(())
}

fn say_done(done: &[Upkept]) {
    for d in done {
        if let Some(e) = d.made {
            print::out(&format!("unit {}: made its key for epoch {e}\n", d.unit));
        }
        for (e, m) in &d.shared {
            print::out(&format!("unit {}: shared the key of epoch {e} with {m}\n", d.unit));
        }
    }
}

fn text(u: &Shown) -> String {
    let key = match (u.has_key, u.waiting_for_key.is_empty()) {
        (false, _) => "no key yet: the next member to connect makes it".to_owned(),
        (true, true) => "every member holds the key".to_owned(),
        (true, false) => format!("key not yet shared with {}", u.waiting_for_key.join(", ")),
    };
    format!(
        "{} ({}), {}: members {}; acknowledged by {} member{}; {key}\n",
        u.unit,
        exhibit_proto::text::escape(&u.name),
        u.org,
        if u.members.is_empty() { "none".to_owned() } else { u.members.join(", ") },
        u.ack,
        if u.ack == "one" { "" } else { "s" },
    )
}
