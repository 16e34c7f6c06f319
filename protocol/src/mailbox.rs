//! The strict seed-001 dialect spoken on `--mailbox-port`: nothing added, nothing forgiven.
//!
//! `LOGIN <user>` first, then `COMPOSE <user>` + one text line, `READ`, and `EXIT`. Anything
//! else — an unknown or lowercase verb, a name with a space, a missing argument — is `None`,
//! and the server drops the connection. The replies are the shared [`crate::Reply`] values
//! (`MailCount`, `MessageSent`, `MessageFailed`, `Mail`, `ReadError`).

use crate::text::Name;

/// One request in the strict mailbox dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailCommand<'a> {
    /// `LOGIN <user>`.
    Login(Name<'a>),
    /// `COMPOSE <user>`; the next line is the text.
    Compose(Name<'a>),
    /// `READ`.
    Read,
    /// `EXIT`.
    Exit,
}

impl<'a> MailCommand<'a> {
    /// Parses one line; `None` is a protocol error that ends the connection.
    pub fn parse(line: &'a str) -> Option<MailCommand<'a>> {
        match line.split_once(' ') {
            Some(("LOGIN", user)) => Name::new(user).ok().map(MailCommand::Login),
            Some(("COMPOSE", user)) => Name::new(user).ok().map(MailCommand::Compose),
            None if line == "READ" => Some(MailCommand::Read),
            None if line == "EXIT" => Some(MailCommand::Exit),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert_eq!(
            MailCommand::parse("LOGIN bob"),
            Some(MailCommand::Login(Name::new("bob").unwrap()))
        );
        assert_eq!(
            MailCommand::parse("COMPOSE alice"),
            Some(MailCommand::Compose(Name::new("alice").unwrap()))
        );
        assert_eq!(MailCommand::parse("READ"), Some(MailCommand::Read));
        assert_eq!(MailCommand::parse("EXIT"), Some(MailCommand::Exit));
        for bad in [
            "LOGIN my username contains the space character",
            "read",
            "LOGIN",
            "LOGIN ",
            "READ now",
            "EXIT ",
            "JOIN bob",
            "COMPOSE",
            "",
        ] {
            assert_eq!(MailCommand::parse(bad), None, "{bad:?}");
        }
    }
}
