//! `--mailbox`: a friendly front end for the strict seed-001 mailbox port.
//!
//! The user logs in, then composes, reads or exits from a small menu; the protocol is never
//! shown. That port drops the connection on any mistake, so every name and text is checked
//! here first, and a reply that does not fit the conversation ends it (seed 001: the
//! receiving party drops the connection on an error).

use protocol::{Classifier, Incoming};

use crate::conn::ConnError;
use crate::dialog::{check_name, Dialog, OnEnd, Stop};
use crate::terminal::Kind;
use crate::ui::Session;
use crate::validate::Field;

/// Runs the mailbox client until the user exits or the connection fails.
pub async fn run(session: Session) -> Result<(), ConnError> {
    let mut dialog = Dialog::new(session, false, OnEnd::Leave);
    match mailbox(&mut dialog).await {
        Ok(()) | Err(Stop::Quit) | Err(Stop::Left) => Ok(()),
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// Log in, then the compose / read / exit loop.
async fn mailbox(d: &mut Dialog) -> Result<(), Stop> {
    d.say(Kind::Plain, "Welcome to the mailbox.");
    let user = loop {
        let check = |s: &str| check_name("user name", s);
        if let Some(user) = d.ask_valid("Your user name: ", None, check).await? {
            break user;
        }
    };
    d.send(&[&format!("LOGIN {user}")]).await?;
    let count = d.reply().await?;
    let count: usize = count.parse().map_err(|_| ConnError::Unexpected(count))?;
    // Logged in: from now on, leaving is announced with EXIT.
    d.farewell = Some("EXIT");
    let plural = if count == 1 { "" } else { "s" };
    d.say(
        Kind::Plain,
        &format!("Hello {user}, you have {count} stored message{plural}."),
    );
    loop {
        d.say(Kind::Plain, "  1) Compose a message");
        d.say(Kind::Plain, "  2) Read your oldest message");
        d.say(Kind::Plain, "  3) Exit");
        let Some(choice) = d.ask("Choice (1-3): ").await? else {
            continue;
        };
        match choice.trim() {
            "1" => compose(d).await?,
            "2" => read(d).await?,
            "3" => {
                d.leave().await;
                d.say(Kind::Plain, "Goodbye.");
                return Ok(());
            }
            other => {
                let msg = format!("{other:?} is not a choice: type 1, 2 or 3.");
                d.say(Kind::Error, &msg);
            }
        }
    }
}

/// Asks for a recipient and a one-line message, then leaves it in their mailbox.
async fn compose(d: &mut Dialog) -> Result<(), Stop> {
    let check = |s: &str| check_name("user name", s);
    let Some(to) = d.ask_valid("To (user name): ", None, check).await? else {
        return Ok(());
    };
    let Some(text) = d
        .ask_valid("Message: ", None, |s| Field::Text.check(s))
        .await?
    else {
        return Ok(());
    };
    d.send(&[&format!("COMPOSE {to}"), &text]).await?;
    let reply = d.reply().await?;
    match Classifier::new().classify(&reply) {
        Incoming::MessageSent => d.say(Kind::Plain, &format!("Message sent to {to}.")),
        Incoming::MessageFailed => d.say(
            Kind::Error,
            &format!("Message not sent: {to}'s mailbox is full."),
        ),
        _ => return Err(ConnError::Unexpected(reply).into()),
    }
    Ok(())
}

/// Takes the oldest stored message and shows it.
async fn read(d: &mut Dialog) -> Result<(), Stop> {
    d.send(&["READ"]).await?;
    let sender = d.reply().await?;
    // The strict door's answer is bare (the sender's name) unless it is READ ERROR.
    if Classifier::new().classify(&sender) == Incoming::ReadError {
        d.say(Kind::Plain, "You have no messages.");
        return Ok(());
    }
    let text = d.reply().await?;
    d.say(Kind::Peer, &format!("From {sender}: {text}"));
    Ok(())
}
