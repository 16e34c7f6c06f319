//! Question-and-answer sessions (the menu and mailbox modes): ask the user, send, wait for
//! the reply, while server notices keep arriving and are shown as they come.
//!
//! Every wait is a `select!` over the socket and the user, so a broadcast is printed while
//! the user is half-way through typing an answer, and the server going away is noticed even
//! while the user is thinking. A [`Stop`] ends the session: the server's quit notice or the
//! user leaving end it well, anything else is an error.

use protocol::Name;

use crate::chat::ANSWER_TIMEOUT;
use crate::conn::ConnError;
use crate::incoming::{Assembler, Incoming};
use crate::terminal::Kind;
use crate::ui::{Event, Session, UserInput};

/// Why a question-and-answer session ended.
#[derive(Debug)]
pub enum Stop {
    /// The server's `* QUIT` notice: exit with success.
    Quit,
    /// The user left (Ctrl-C, the exit choice, end of input): exit with success.
    Left,
    /// The connection failed: exit with an error.
    Failed(ConnError),
}

impl From<ConnError> for Stop {
    fn from(e: ConnError) -> Self {
        Stop::Failed(e)
    }
}

/// What happens when the user's input ends (stdin, not a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEnd {
    /// Keep showing what the server sends until it quits (seed 000's menu client).
    Linger,
    /// Leave, as the user's exit choice would.
    Leave,
}

/// A session that asks questions and waits for replies.
pub struct Dialog {
    /// The connection and the user.
    pub session: Session,
    /// Whether `* ` lines are server notices (chat port) or plain data (mailbox port).
    notices: bool,
    /// Puts multi-message notices back together.
    assembler: Assembler,
    /// What the end of stdin means.
    on_end: OnEnd,
    /// Said to the server when the user leaves (`QUIT`, `EXIT`), if anything.
    pub farewell: Option<&'static str>,
    /// Whether the server has said anything yet.
    answered: bool,
}

impl Dialog {
    /// A dialog over `session`; `notices` turns on `* ` notice handling (chat port).
    pub fn new(session: Session, notices: bool, on_end: OnEnd) -> Self {
        Dialog {
            session,
            notices,
            assembler: Assembler::default(),
            on_end,
            farewell: None,
            answered: false,
        }
    }

    /// Shows one line to the user.
    pub fn say(&mut self, kind: Kind, text: &str) {
        self.session.ui.say(kind, text);
    }

    /// Sends a command and its follow-ups in one write.
    pub async fn send(&mut self, messages: &[&str]) -> Result<(), Stop> {
        Ok(self.session.writer.send(messages).await?)
    }

    /// Asks a question; `Ok(None)` when the user pressed Esc to go back.
    pub async fn ask(&mut self, prompt: &str) -> Result<Option<String>, Stop> {
        self.session.ui.set_prompt(prompt);
        loop {
            match self.session.next_event(true).await {
                Event::Server(msg) => {
                    if let Some(line) = self.server(msg).await? {
                        self.say(Kind::Plain, &line);
                    }
                }
                Event::User(UserInput::Line(line)) => return Ok(Some(line)),
                Event::User(UserInput::Cancel) => return Ok(None),
                Event::User(UserInput::Leave) => return Err(self.leave().await),
                Event::User(UserInput::Ended) => return Err(self.ended().await),
            }
        }
    }

    /// Asks until the answer passes `check` (an empty answer takes `default`); each refusal
    /// is explained and the question asked again. `Ok(None)`: the user went back.
    pub async fn ask_valid(
        &mut self,
        prompt: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Option<String>, Stop> {
        loop {
            let Some(answer) = self.ask(prompt).await? else {
                return Ok(None);
            };
            let answer = match default {
                Some(d) if answer.trim().is_empty() => d.to_owned(),
                _ => answer,
            };
            match check(&answer) {
                Ok(()) => return Ok(Some(answer)),
                Err(reason) => self.say(Kind::Error, &format!("{reason}. Please try again.")),
            }
        }
    }

    /// Waits for the reply to what was just sent, showing notices that come first.
    /// Until the server has answered once, the answer is awaited only [`ANSWER_TIMEOUT`]:
    /// a server that says nothing at all is probably not the port the user meant.
    pub async fn reply(&mut self) -> Result<String, Stop> {
        self.session.ui.set_prompt("");
        loop {
            let event = if self.answered {
                self.session.next_event(false).await
            } else {
                let Some(event) = self.session.next_event_within(false, ANSWER_TIMEOUT).await
                else {
                    let addr = self.session.addr.clone();
                    let door = if self.notices { "chat" } else { "mailbox" };
                    return Err(Stop::Failed(ConnError::NoAnswer { addr, door }));
                };
                event
            };
            match event {
                Event::Server(Ok(None)) | Event::Server(Err(_)) if !self.answered => {
                    // Closed without a word (as the strict mailbox door does): wrong port?
                    let addr = self.session.addr.clone();
                    let door = if self.notices { "chat" } else { "mailbox" };
                    return Err(Stop::Failed(ConnError::NoAnswer { addr, door }));
                }
                Event::Server(msg) => {
                    self.answered = true;
                    if let Some(line) = self.server(msg).await? {
                        return Ok(line);
                    }
                }
                Event::User(UserInput::Leave) => return Err(self.leave().await),
                Event::User(_) => {}
            }
        }
    }

    /// Handles one server message: notices are acted on or shown; a reply is returned.
    async fn server(
        &mut self,
        msg: Result<Option<String>, ConnError>,
    ) -> Result<Option<String>, Stop> {
        let msg = msg?.ok_or(ConnError::Closed)?;
        if !self.notices {
            return Ok(Some(msg));
        }
        match self.assembler.feed(&msg) {
            None => {}
            Some(Incoming::Reply { text, .. }) => return Ok(Some(text)),
            Some(Incoming::Hello(name)) => return Ok(Some(format!("HELLO {name}"))),
            Some(Incoming::MailCount(n)) => return Ok(Some(n.to_string())),
            Some(Incoming::Ping) => self.send(&["PONG"]).await?,
            Some(Incoming::Quit(reason)) => {
                self.say(
                    Kind::Notice,
                    &format!("The server is shutting down ({reason}). Goodbye."),
                );
                return Err(Stop::Quit);
            }
            Some(Incoming::Error(reason)) => self.say(
                Kind::Error,
                &format!("The server reports an error: {reason}"),
            ),
            Some(Incoming::Post {
                sender,
                subject,
                body,
            }) => {
                self.say(Kind::Peer, &format!("Broadcast from {sender}"));
                self.say(Kind::Peer, &format!("  Subject: {subject}"));
                self.say(Kind::Peer, &format!("  {body}"));
            }
            Some(Incoming::Mail { from, text }) => {
                self.say(Kind::Peer, &format!("Mail from {from}: {text}"));
            }
            Some(Incoming::MailArrived(from)) => {
                self.say(Kind::Notice, &format!("* New mail from {from}"));
            }
            Some(Incoming::Message(line)) => self.say(Kind::Peer, &line),
            Some(Incoming::Notice(text)) => self.say(Kind::Notice, &format!("* {text}")),
            Some(Incoming::Entered(room)) => return Ok(Some(format!("ENTERED {room}"))),
            Some(Incoming::Parted(room)) => return Ok(Some(format!("PARTED {room}"))),
            Some(Incoming::RoomMessage { room, from, text }) => {
                self.say(Kind::Peer, &format!("[{room}] {from}: {text}"));
            }
            Some(Incoming::History {
                room,
                time,
                from,
                text,
            }) => {
                self.say(
                    Kind::Plain,
                    &format!("[{room}] (history, {time}) {from}: {text}"),
                );
            }
        }
        Ok(None)
    }

    /// The user leaves: say the farewell, if any, and wait briefly for the server to close.
    pub async fn leave(&mut self) -> Stop {
        match self.farewell {
            Some(farewell) => self.session.leave(farewell).await,
            None => self.session.writer.finish(),
        }
        Stop::Left
    }

    /// Standard input ended: leave, or keep showing notices until the server quits.
    async fn ended(&mut self) -> Stop {
        if self.on_end == OnEnd::Leave {
            return self.leave().await;
        }
        self.say(
            Kind::Plain,
            "(End of input: still showing broadcasts until the server quits.)",
        );
        loop {
            let msg = self.session.reader.next().await;
            match self.server(msg).await {
                Ok(Some(line)) => self.say(Kind::Plain, &line),
                Ok(None) => {}
                Err(stop) => return stop,
            }
        }
    }
}

/// Checks a name answer, explaining the rules when it is refused.
pub fn check_name(what: &str, answer: &str) -> Result<(), String> {
    Name::new(answer)
        .map(drop)
        .map_err(|e| format!("Invalid {what}: {e}"))
}
