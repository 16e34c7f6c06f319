//! Client-side checking of what the user asks to send (seed 001: only valid messages leave).
//!
//! A [`Composer`] takes the user's lines one at a time. A plain command is checked with the
//! same parser the server uses and sent at once. COMPOSE and POST need follow-up messages
//! (the text; the subject and body): the command is held until every follow-up has passed
//! its own check, then all of it is sent together, so the server never receives half a
//! command. Anything refused is reported locally and nothing at all is sent for it.

use std::collections::VecDeque;

use protocol::text::{body, check_printable, subject};
use protocol::{Command, DEFAULT_MAX_MESSAGE};

/// A follow-up message that a held command still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The text of a COMPOSE.
    Text,
    /// The subject of a POST (1 to 80 characters).
    Subject,
    /// The body of a POST (1 to 512 characters).
    Body,
}

impl Field {
    /// A short name for prompts.
    pub fn label(self) -> &'static str {
        match self {
            Field::Text => "message text",
            Field::Subject => "subject (1-80 characters)",
            Field::Body => "body (1-512 characters)",
        }
    }

    /// Checks one follow-up line, or says what is wrong with it.
    pub fn check(self, line: &str) -> Result<(), String> {
        match self {
            Field::Text => {
                if line.is_empty() {
                    return Err("the message text cannot be empty".into());
                }
                check_line(line)
            }
            Field::Subject => subject(line)
                .map(drop)
                .map_err(|e| format!("Invalid Subject: {e}")),
            Field::Body => body(line)
                .map(drop)
                .map_err(|e| format!("Invalid Body: {e}")),
        }
    }
}

/// Checks what every message must be: printable and within the wire limit.
pub fn check_line(line: &str) -> Result<(), String> {
    if line.len() > DEFAULT_MAX_MESSAGE {
        return Err(format!(
            "too long: {} bytes, a message has at most {DEFAULT_MAX_MESSAGE}",
            line.len()
        ));
    }
    check_printable(line).map_err(|e| format!("Invalid Text: {e}"))
}

/// How refusals of a held command's follow-ups are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Lines come from a script: a refused command's follow-up lines are skipped, as the
    /// server would consume them, so the script stays in step.
    Script,
    /// A person is typing: a refused follow-up is asked for again.
    Interactive,
}

/// What to do with one line the user entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing (an empty line).
    Nothing,
    /// Send these messages, in one write.
    Send {
        /// The command and its follow-ups.
        messages: Vec<String>,
        /// Whether this is QUIT/EXIT, after which the server closes the connection.
        quit: bool,
    },
    /// The command is held; the next line is this follow-up.
    Need(Field),
    /// The follow-up was refused (interactive policy); ask for it again.
    Retry {
        /// What is wrong.
        reason: String,
        /// The field still needed.
        field: Field,
    },
    /// Refused; nothing is sent for this command.
    Refused(String),
    /// A follow-up line of a refused command (script policy): skipped, not sent.
    Skipped,
}

/// Turns entered lines into checked messages, holding multi-message commands together.
#[derive(Debug)]
pub struct Composer {
    /// Script or interactive handling of refused follow-ups.
    policy: Policy,
    /// The held command and the follow-ups accepted so far.
    held: Vec<String>,
    /// Follow-ups the held command still needs, in order.
    fields: VecDeque<Field>,
    /// Lines still to skip after a refused command (script policy).
    skip: usize,
}

impl Composer {
    /// An empty composer with the given policy.
    pub fn new(policy: Policy) -> Self {
        Composer {
            policy,
            held: Vec::new(),
            fields: VecDeque::new(),
            skip: 0,
        }
    }

    /// The follow-up the next line will be taken as, if a command is held.
    pub fn pending(&self) -> Option<Field> {
        self.fields.front().copied()
    }

    /// Drops a held command (the user cancelled the form); nothing was sent for it.
    pub fn cancel(&mut self) {
        self.held.clear();
        self.fields.clear();
    }

    /// Takes one entered line.
    pub fn feed(&mut self, line: &str) -> Step {
        if self.skip > 0 {
            self.skip -= 1;
            return Step::Skipped;
        }
        if let Some(field) = self.pending() {
            return self.follow_up(field, line);
        }
        if line.is_empty() {
            return Step::Nothing;
        }
        if let Err(reason) = check_line(line) {
            return Step::Refused(reason);
        }
        match Command::parse(line) {
            Err(e) => {
                if self.policy == Policy::Script {
                    self.skip = e.followups.into();
                }
                Step::Refused(e.kind.to_string())
            }
            Ok(cmd) => {
                let fields: &[Field] = match cmd {
                    Command::Compose(_) => &[Field::Text],
                    Command::Post(_) => &[Field::Subject, Field::Body],
                    _ => &[],
                };
                if fields.is_empty() {
                    let quit = cmd == Command::Quit;
                    return Step::Send {
                        messages: vec![line.to_owned()],
                        quit,
                    };
                }
                self.held.push(line.to_owned());
                self.fields.extend(fields);
                Step::Need(fields[0])
            }
        }
    }

    /// Checks a follow-up line of the held command.
    fn follow_up(&mut self, field: Field, line: &str) -> Step {
        if let Err(reason) = field.check(line) {
            return match self.policy {
                Policy::Interactive => Step::Retry { reason, field },
                Policy::Script => {
                    self.skip = self.fields.len() - 1;
                    self.cancel();
                    Step::Refused(reason)
                }
            };
        }
        self.held.push(line.to_owned());
        self.fields.pop_front();
        match self.pending() {
            Some(next) => Step::Need(next),
            None => Step::Send {
                messages: std::mem::take(&mut self.held),
                quit: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(lines: &[&str]) -> Step {
        Step::Send {
            messages: lines.iter().map(|s| s.to_string()).collect(),
            quit: false,
        }
    }

    #[test]
    fn plain_commands_are_sent_and_unknown_verbs_too() {
        let mut c = Composer::new(Policy::Script);
        assert_eq!(c.feed("NAME A"), send(&["NAME A"]));
        assert_eq!(c.feed("MSG B HELLO"), send(&["MSG B HELLO"]));
        assert_eq!(c.feed("DANCE"), send(&["DANCE"]));
        assert_eq!(c.feed(""), Step::Nothing);
        assert_eq!(
            c.feed("EXIT"),
            Step::Send {
                messages: vec!["EXIT".into()],
                quit: true
            }
        );
    }

    #[test]
    fn bad_commands_are_refused_locally() {
        let mut c = Composer::new(Policy::Interactive);
        let refused = |step: Step, want: &str| match step {
            Step::Refused(r) => assert!(r.contains(want), "{r:?} lacks {want:?}"),
            other => panic!("{other:?}"),
        };
        refused(c.feed("MSG B"), "Usage: MSG <name> <text>");
        refused(c.feed("NAME"), "Usage: NAME <name>");
        refused(c.feed("NAME my name"), "Invalid Name");
        refused(c.feed("MSG b@d hi"), "Invalid Name");
        refused(c.feed("BCST tab\there"), "printable");
        refused(c.feed(&format!("BCST {}", "x".repeat(5000))), "too long");
        refused(c.feed("POST joe"), "Invalid Sender");
        refused(c.feed("LIST now"), "Usage: LIST");
    }

    #[test]
    fn compose_is_held_until_its_text_is_valid() {
        let mut c = Composer::new(Policy::Interactive);
        assert_eq!(c.feed("COMPOSE alice"), Step::Need(Field::Text));
        assert_eq!(c.pending(), Some(Field::Text));
        assert!(matches!(
            c.feed(""),
            Step::Retry {
                field: Field::Text,
                ..
            }
        ));
        assert!(matches!(c.feed("a\u{7}"), Step::Retry { .. }));
        assert_eq!(c.feed("Hi Alice!"), send(&["COMPOSE alice", "Hi Alice!"]));
        assert_eq!(c.pending(), None);
    }

    #[test]
    fn post_needs_subject_then_body() {
        let mut c = Composer::new(Policy::Interactive);
        assert_eq!(c.feed("POST joe@merlin"), Step::Need(Field::Subject));
        assert!(matches!(
            c.feed(&"s".repeat(81)),
            Step::Retry {
                field: Field::Subject,
                ..
            }
        ));
        assert_eq!(c.feed("Lunch"), Step::Need(Field::Body));
        assert!(matches!(
            c.feed(&"b".repeat(513)),
            Step::Retry {
                field: Field::Body,
                ..
            }
        ));
        assert_eq!(
            c.feed("Noon."),
            send(&["POST joe@merlin", "Lunch", "Noon."])
        );
    }

    #[test]
    fn cancel_drops_the_held_command() {
        let mut c = Composer::new(Policy::Interactive);
        assert_eq!(c.feed("POST joe@merlin"), Step::Need(Field::Subject));
        c.cancel();
        assert_eq!(c.feed("LIST"), send(&["LIST"]));
    }

    #[test]
    fn script_skips_the_follow_ups_of_a_refused_command() {
        let mut c = Composer::new(Policy::Script);
        assert!(matches!(c.feed("COMPOSE bad name"), Step::Refused(_)));
        assert_eq!(c.feed("the text"), Step::Skipped);
        assert_eq!(c.feed("LIST"), send(&["LIST"]));
        // A bad subject drops the POST and skips its body line.
        assert_eq!(c.feed("POST a@m"), Step::Need(Field::Subject));
        assert!(matches!(c.feed(""), Step::Refused(_)));
        assert_eq!(c.feed("body"), Step::Skipped);
        assert_eq!(c.feed("READ"), send(&["READ"]));
    }
}
