//! What the server says, sorted: notices it originates (`* ...`) versus replies and users'
//! messages, with a structured broadcast's three messages put back together.
//!
//! PROTOCOL.md: every line the server originates starts with `* `, which no name can, so
//! this needs no guessing. A `* POST <sender>` is followed by its subject and its body.

/// One thing the server said, as the modes want to handle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `* PING`: the server checks we are alive; answer `PONG`.
    Ping,
    /// `* QUIT <reason>`: the server is shutting down; the client exits with success.
    Quit(String),
    /// `* ERROR <reason>`: the server is closing this connection, and why.
    Error(String),
    /// A complete structured broadcast (seed 000).
    Post {
        /// `user@machine`.
        sender: String,
        /// 1 to 80 characters.
        subject: String,
        /// 1 to 512 characters.
        body: String,
    },
    /// Any other server notice (`* B joined`, `* B left`...), without the `* `.
    Notice(String),
    /// A reply to one of our commands, or a user's message (`A SENT HELLO`).
    Line(String),
}

/// Reassembles multi-message notices from the stream of messages.
#[derive(Debug, Default)]
pub struct Assembler {
    /// A `* POST` in progress: the sender and, once it came, the subject.
    post: Option<(String, Option<String>)>,
}

impl Assembler {
    /// Takes one message; `None` while a structured broadcast is still incomplete.
    pub fn feed(&mut self, msg: String) -> Option<Incoming> {
        if let Some((sender, subject)) = self.post.take() {
            return match subject {
                None => {
                    let subject = msg.strip_prefix("SUBJECT ").unwrap_or(&msg).to_owned();
                    self.post = Some((sender, Some(subject)));
                    None
                }
                Some(subject) => Some(Incoming::Post {
                    sender,
                    subject,
                    body: msg.strip_prefix("BODY ").unwrap_or(&msg).to_owned(),
                }),
            };
        }
        let Some(notice) = msg.strip_prefix("* ") else {
            return Some(Incoming::Line(msg));
        };
        let (word, rest) = notice.split_once(' ').unwrap_or((notice, ""));
        Some(match word {
            "PING" => Incoming::Ping,
            "QUIT" => Incoming::Quit(rest.to_owned()),
            "ERROR" => Incoming::Error(rest.to_owned()),
            "POST" => {
                self.post = Some((rest.to_owned(), None));
                return None;
            }
            _ => Incoming::Notice(notice.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &[&str]) -> Vec<Incoming> {
        let mut a = Assembler::default();
        lines.iter().filter_map(|l| a.feed(l.to_string())).collect()
    }

    #[test]
    fn notices_and_lines() {
        assert_eq!(
            feed_all(&["* PING", "* B joined", "HELLO A", "A SENT HELLO"]),
            [
                Incoming::Ping,
                Incoming::Notice("B joined".into()),
                Incoming::Line("HELLO A".into()),
                Incoming::Line("A SENT HELLO".into()),
            ]
        );
        assert_eq!(
            feed_all(&["* QUIT server shutting down", "* ERROR ping timeout"]),
            [
                Incoming::Quit("server shutting down".into()),
                Incoming::Error("ping timeout".into())
            ]
        );
    }

    #[test]
    fn structured_broadcast_is_reassembled() {
        assert_eq!(
            feed_all(&[
                "* POST joe@merlin",
                "SUBJECT Lunch",
                "BODY * Noon",
                "POSTED 1"
            ]),
            [
                Incoming::Post {
                    sender: "joe@merlin".into(),
                    subject: "Lunch".into(),
                    body: "* Noon".into()
                },
                Incoming::Line("POSTED 1".into())
            ]
        );
    }
}
