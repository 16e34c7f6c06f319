//! Interactive chat (stdin is a terminal): type while messages arrive.
//!
//! One event loop waits on the socket and the keyboard together (seed 003). What a typed
//! line means is decided here, as a person expects from a chat program:
//!
//! * `/msg`, `/list`, `/join`, `/mail`, `/read`, `/post`, `/quit`, `/help` ([`SLASH`]), in
//!   any case; an unknown one gets a suggestion;
//! * a protocol command as typed (`MSG B hi`, `LIST`), or its verb in any case when the
//!   line is a valid command that way (`list`, `join alice`);
//! * any other line: said in the current room once joined (a broadcast in `#lobby`), else
//!   the name to join with. `/join #room` enters a room and makes it current (the prompt
//!   shows it), `/part` leaves it; messages from other rooms are tagged with their room,
//!   and what was said before we entered is shown as history, with its time.
//!
//! Every line is checked by the [`Composer`] before anything is sent; COMPOSE and POST ask
//! for their follow-up lines with their own prompts. When the server goes away the client
//! says so, reconnects with backoff, joins with the same name again and says when it is
//! back; the half-typed line stays as it was throughout.

use std::time::Duration;

use protocol::command::syntax;
use protocol::{Command, Framing};

use crate::conn::{self, ConnError};
use crate::incoming::{Assembler, Incoming};
use crate::terminal::Kind;
use crate::ui::{Event, Session, UserInput};
use crate::validate::{Composer, Policy, Step};

/// How long the server may take to answer the first command before the client says it
/// may be talking to the wrong port.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// The first wait before reconnecting; it doubles after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a slash command does.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Sends the protocol line built from the arguments, checked like a typed line.
    Wire(fn(&str) -> String),
    /// COMPOSE made easy: `<name> [text]`, asking for the text if not given.
    Compose,
    /// POST made easy: asks for the subject and the body.
    Post,
    /// `/signup` and `/auth`: asks for the password without echo, then sends.
    Password,
    /// Lists the commands.
    Help,
    /// Leaves.
    Quit,
    /// `/join #room` enters a room; `/join name` takes a name.
    Join,
    /// Leaves the given room, or the current one.
    Part,
    /// Shows or sets the topic of the given room, or of the current one.
    Topic,
}

/// One of the client's own commands.
#[derive(Debug, Clone, Copy)]
struct Slash {
    /// The word after `/`, lower case (typed in any case).
    name: &'static str,
    /// How it is used, for `/help`.
    usage: &'static str,
    /// What it does, for `/help`.
    what: &'static str,
    /// What it does, for the client.
    action: Action,
}

/// The client's commands, in `/help` order (one entry per command).
const SLASH: &[Slash] = &[
    Slash {
        name: "msg",
        usage: "/msg <name> <text>",
        what: "a direct message",
        action: Action::Wire(|args| format!("MSG {args}")),
    },
    Slash {
        name: "list",
        usage: "/list",
        what: "who is here",
        action: Action::Wire(|_| "LIST".to_owned()),
    },
    Slash {
        name: "join",
        usage: "/join <name>|<#room>",
        what: "take a name, or enter a room (it becomes the current room)",
        action: Action::Join,
    },
    Slash {
        name: "part",
        usage: "/part [#room]",
        what: "leave a room (the current one if none is named)",
        action: Action::Part,
    },
    Slash {
        name: "rooms",
        usage: "/rooms",
        what: "the rooms there are",
        action: Action::Wire(|_| "ROOMS".to_owned()),
    },
    Slash {
        name: "topic",
        usage: "/topic [#room] [text]",
        what: "show or set a room's topic (the current room if none is named)",
        action: Action::Topic,
    },
    Slash {
        name: "mail",
        usage: "/mail <name> [text]",
        what: "leave a message in a mailbox (asks for the text if not given)",
        action: Action::Compose,
    },
    Slash {
        name: "compose",
        usage: "/compose <name> [text]",
        what: "the same as /mail",
        action: Action::Compose,
    },
    Slash {
        name: "read",
        usage: "/read",
        what: "read your oldest stored message",
        action: Action::Wire(|_| "READ".to_owned()),
    },
    Slash {
        name: "post",
        usage: "/post <user@machine>",
        what: "a broadcast to registered machines (asks for subject and body)",
        action: Action::Post,
    },
    Slash {
        name: "signup",
        usage: "/signup <name>",
        what: "create an account that owns the name (asks for the password, not shown)",
        action: Action::Password,
    },
    Slash {
        name: "auth",
        usage: "/auth <name>",
        what: "sign in to your account (asks for the password, not shown)",
        action: Action::Password,
    },
    Slash {
        name: "quit",
        usage: "/quit",
        what: "leave (also Ctrl-C, or Ctrl-D on an empty line)",
        action: Action::Quit,
    },
    Slash {
        name: "help",
        usage: "/help",
        what: "this list",
        action: Action::Help,
    },
];

/// Protocol verbs shown by `/help` (they work as typed).
const WIRE_VERBS: &str = "JOIN LIST MSG BCST ENTER PART SAY ROOMS TOPIC LOGIN COMPOSE READ \
                          ACK REGISTER DEREGISTER POST SHUTDOWN SIGNUP AUTH PING QUIT";

/// The interactive chat's state.
struct Chat {
    /// Socket, keyboard and screen.
    session: Session,
    /// Checks lines and holds commands that need follow-ups.
    composer: Composer,
    /// Reads the server's messages by the protocol's state.
    assembler: Assembler,
    /// The server, as given on the command line.
    host: String,
    /// The server's port.
    port: u16,
    /// Our name once the server said `HELLO <name>`, or counted a LOGIN's mail (prompt).
    name: Option<String>,
    /// The name a LOGIN we sent asked for, until its reply (a bare count) comes.
    login: Option<String>,
    /// Whether we sent QUIT/EXIT, so the server's close is expected.
    quitting: bool,
    /// Until the server has said anything, the answer to our first command is awaited
    /// only this long; `None` once it has.
    first_answer: Option<Duration>,
    /// Whether the answer still to come is the PONG of our probe (shown to nobody).
    probing: bool,
    /// The `AUTH <name> <password>` (or SIGNUP) sent last, until its HELLO proves it.
    signing_in: Option<(String, String)>,
    /// The account this connection proved, kept in memory only, so that a reconnect signs
    /// in again instead of meeting `Password Required`.
    account: Option<(String, String)>,
    /// The room typed lines go to, when not the lobby.
    room: Option<String>,
}

/// What the loop does next.
enum Flow {
    /// Keep going.
    Continue,
    /// Leave with success.
    Stop,
}

/// Runs the interactive chat until the user leaves or the server quits; joins at once as
/// `name` when one is given.
pub async fn run(
    session: Session,
    host: &str,
    port: u16,
    name: Option<&str>,
) -> Result<(), ConnError> {
    let mut chat = Chat {
        session,
        composer: Composer::new(Policy::Interactive),
        assembler: Assembler::default(),
        host: host.to_owned(),
        port,
        name: None,
        login: None,
        quitting: false,
        first_answer: Some(ANSWER_TIMEOUT),
        probing: false,
        signing_in: None,
        account: None,
        room: None,
    };
    chat.say(Kind::Plain, &format!("Connected to {host}:{port}."));
    // Proves at once that this is a chat server, whatever comes next.
    chat.probing = true;
    chat.session.writer.send(&["PING"]).await?;
    match name {
        Some(name) => {
            chat.user(&format!("JOIN {name}")).await?;
        }
        None => chat.say(
            Kind::Plain,
            "Type your name to join (or /help); after that, what you type is said to everyone.",
        ),
    }
    chat.update_prompt();
    loop {
        let event = match chat.first_answer {
            Some(wait) => chat.session.next_event_within(true, wait).await,
            None => Some(chat.session.next_event(true).await),
        };
        let flow = match event {
            None => {
                let addr = format!("{host}:{port}");
                return Err(ConnError::NoAnswer { addr, door: "chat" });
            }
            Some(Event::Server(Ok(Some(msg)))) => {
                chat.first_answer = None;
                chat.server(&msg).await?
            }
            Some(Event::Server(Ok(None))) if chat.quitting => Flow::Stop,
            Some(Event::Server(end)) => match (&chat.name, chat.first_answer) {
                // Once joined, a lost server is waited for; before, it is an error.
                (Some(_), None) => chat.reconnect().await?,
                // Closed without a word (the strict mailbox door does that): wrong port?
                (_, Some(_)) => {
                    let addr = format!("{host}:{port}");
                    return Err(ConnError::NoAnswer { addr, door: "chat" });
                }
                (None, None) => return Err(end.err().unwrap_or(ConnError::Closed)),
            },
            Some(Event::User(UserInput::Line(line))) => chat.user(&line).await?,
            Some(Event::User(UserInput::Cancel)) => {
                if chat.composer.pending().is_some() {
                    chat.composer.cancel();
                    chat.say(Kind::Plain, "Cancelled; nothing was sent.");
                    chat.update_prompt();
                }
                Flow::Continue
            }
            Some(Event::User(UserInput::Leave | UserInput::Ended)) => {
                chat.session.leave("QUIT").await;
                Flow::Stop
            }
        };
        if let Flow::Stop = flow {
            return Ok(());
        }
    }
}

impl Chat {
    /// Shows one line above the input line.
    fn say(&mut self, kind: Kind, text: &str) {
        self.session.ui.say(kind, text);
    }

    /// The prompt says what the next line is: a follow-up, or a line from `name`.
    fn prompt(&self) -> String {
        match (self.composer.pending(), &self.name) {
            (Some(field), _) => format!("{}> ", field.label()),
            (None, Some(name)) => match &self.room {
                Some(room) => format!("{name} {room}> "),
                None => format!("{name}> "),
            },
            (None, None) => "name> ".to_owned(),
        }
    }

    /// Shows the prompt that fits the state.
    fn update_prompt(&mut self) {
        let prompt = self.prompt();
        self.session.ui.set_prompt(&prompt);
    }

    /// Shows one server message (or acts on it).
    async fn server(&mut self, msg: &str) -> Result<Flow, ConnError> {
        let Some(incoming) = self.assembler.feed(msg) else {
            return Ok(Flow::Continue);
        };
        match incoming {
            Incoming::Ping => self.session.writer.send(&["PONG"]).await?,
            Incoming::Quit(reason) => {
                self.say(Kind::Notice, &format!("* QUIT {reason}"));
                self.say(Kind::Plain, "The server is shutting down. Goodbye.");
                return Ok(Flow::Stop);
            }
            Incoming::Error(reason) => self.say(Kind::Error, &format!("* ERROR {reason}")),
            Incoming::Notice(text) => self.say(Kind::Notice, &format!("* {text}")),
            Incoming::MailArrived(from) => self.say(
                Kind::Notice,
                &format!("* New mail from {from}: type /read to read it."),
            ),
            Incoming::Post {
                sender,
                subject,
                body,
            } => {
                self.say(Kind::Peer, &format!("* POST from {sender}: {subject}"));
                self.say(Kind::Peer, &format!("  {body}"));
            }
            Incoming::Mail { from, text } => {
                self.say(Kind::Peer, &format!("Mail from {from}: {text}"));
            }
            Incoming::Hello(name) => {
                self.say(Kind::Plain, &format!("HELLO {name}"));
                if let Some((who, password)) = self.signing_in.take() {
                    if who == name {
                        self.account = Some((who, password));
                    }
                }
                self.name = Some(name);
                self.update_prompt();
            }
            Incoming::MailCount(n) => {
                if let Some(name) = self.login.take() {
                    self.name = Some(name);
                    self.update_prompt();
                }
                self.say(Kind::Plain, &format!("{n} stored message(s)"));
            }
            Incoming::Message(line) => self.say(Kind::Peer, &line),
            Incoming::RoomMessage { room, from, text } => {
                self.say(Kind::Peer, &format!("[{room}] {from}: {text}"))
            }
            Incoming::History {
                room,
                time,
                from,
                text,
            } => {
                // `2026-12-01T16:04:21.123Z` shown as `2026-12-01 16:04:21`.
                let when = time.get(..19).unwrap_or(&time).replacen('T', " ", 1);
                self.say(
                    Kind::Plain,
                    &format!("[{room}] (history, {when} UTC) {from}: {text}"),
                );
            }
            Incoming::Entered(room) => {
                self.say(
                    Kind::Plain,
                    &format!("ENTERED {room}: what you type now goes there (/part leaves)"),
                );
                self.room = Some(room).filter(|r| !r.eq_ignore_ascii_case(protocol::LOBBY));
                self.update_prompt();
            }
            Incoming::Parted(room) => {
                self.say(Kind::Plain, &format!("PARTED {room}"));
                if self
                    .room
                    .as_ref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&room))
                {
                    self.room = None;
                    self.say(
                        Kind::Plain,
                        "Back in #lobby: what you type goes to everyone.",
                    );
                }
                self.update_prompt();
            }
            Incoming::Reply { text, refused } => {
                if self.probing && text == "PONG" {
                    self.probing = false;
                } else {
                    let kind = if refused { Kind::Error } else { Kind::Plain };
                    self.say(kind, &text);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Handles one entered line: a follow-up, a client command, a protocol command, or
    /// chat.
    async fn user(&mut self, line: &str) -> Result<Flow, ConnError> {
        if self.composer.pending().is_some() {
            let step = self.composer.feed(line);
            return self.step(step).await;
        }
        if let Some(rest) = line.strip_prefix('/') {
            return self.slash(rest).await;
        }
        match to_wire(line, self.name.is_some(), self.room.as_deref()) {
            Ok(wire) => {
                let step = self.composer.feed(&wire);
                self.step(step).await
            }
            Err(reason) => {
                self.say(Kind::Error, &format!("Not sent: {reason}"));
                Ok(Flow::Continue)
            }
        }
    }

    /// Carries out what the composer decided.
    async fn step(&mut self, step: Step) -> Result<Flow, ConnError> {
        match step {
            Step::Send { messages, quit } => {
                if let Some(name) = messages.first().and_then(|m| m.strip_prefix("LOGIN ")) {
                    self.login = Some(name.to_owned());
                }
                self.session.writer.send(&messages).await?;
                self.quitting |= quit;
            }
            Step::Need(_) | Step::Nothing | Step::Skipped => {}
            Step::Retry { reason, field } => {
                let text = format!(
                    "Not sent: {reason}. Enter the {} again, or Esc.",
                    field.label()
                );
                self.say(Kind::Error, &text);
            }
            Step::Refused(reason) => self.say(Kind::Error, &format!("Not sent: {reason}")),
        }
        self.update_prompt();
        Ok(Flow::Continue)
    }

    /// A `/` command, the verb in any case.
    async fn slash(&mut self, rest: &str) -> Result<Flow, ConnError> {
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let verb = verb.to_lowercase();
        let Some(command) = SLASH.iter().find(|s| s.name == verb) else {
            let hint = match suggest(&verb) {
                Some(name) => format!("did you mean /{name}? "),
                None => String::new(),
            };
            self.say(
                Kind::Error,
                &format!("Unknown command /{verb}: {hint}/help lists the commands."),
            );
            return Ok(Flow::Continue);
        };
        match command.action {
            Action::Wire(build) => {
                let step = self.composer.feed(&build(args.trim()));
                return self.step(step).await;
            }
            Action::Help => self.help(),
            Action::Quit => {
                self.session.leave("QUIT").await;
                return Ok(Flow::Stop);
            }
            Action::Compose => {
                let (to, text) = args.split_once(' ').unwrap_or((args, ""));
                let step = self.composer.feed(&format!("COMPOSE {to}"));
                let step = match step {
                    Step::Need(_) if !text.is_empty() => self.composer.feed(text),
                    other => other,
                };
                return self.step(step).await;
            }
            Action::Post => {
                let step = self.composer.feed(&format!("POST {args}"));
                return self.step(step).await;
            }
            Action::Password => self.password_command(&format!("{verb} {args}")).await?,
            Action::Join => {
                let args = args.trim();
                let wire = if args.starts_with('#') {
                    format!("ENTER {args}")
                } else {
                    format!("JOIN {args}")
                };
                let step = self.composer.feed(&wire);
                return self.step(step).await;
            }
            Action::Part => {
                let args = args.trim();
                let room = if args.is_empty() {
                    self.room.clone()
                } else {
                    Some(args.to_owned())
                };
                let Some(room) = room else {
                    self.say(
                        Kind::Error,
                        "Not sent: you are only in #lobby, which every client stays in",
                    );
                    return Ok(Flow::Continue);
                };
                let step = self.composer.feed(&format!("PART {room}"));
                return self.step(step).await;
            }
            Action::Topic => {
                let args = args.trim();
                let wire = match (&self.room, args.starts_with('#')) {
                    (_, true) => format!("TOPIC {args}"),
                    (Some(room), false) if args.is_empty() => format!("TOPIC {room}"),
                    (Some(room), false) => format!("TOPIC {room} {args}"),
                    (None, false) if args.is_empty() => format!("TOPIC {}", protocol::LOBBY),
                    (None, false) => format!("TOPIC {} {args}", protocol::LOBBY),
                };
                let step = self.composer.feed(&wire);
                return self.step(step).await;
            }
        }
        Ok(Flow::Continue)
    }

    /// `/signup <name>` and `/auth <name>`: asks for the password without echo, then sends.
    async fn password_command(&mut self, line: &str) -> Result<(), ConnError> {
        let Some((verb, name)) =
            crate::secret::parse(&format!("/{line}")).map(|(v, n)| (v, n.to_owned()))
        else {
            return Ok(());
        };
        if let Err(why) = crate::secret::check_name(&name) {
            self.say(Kind::Error, &format!("Not sent: {why}"));
            return Ok(());
        }
        let prompt = format!("password for {name} (not shown): ");
        match self.session.ui.read_secret(&prompt).await {
            None => self.say(Kind::Plain, "Cancelled; nothing was sent."),
            Some(password) => match crate::secret::command(verb, &name, &password) {
                Ok(command) => {
                    self.session.writer.send(&[command]).await?;
                    self.signing_in = Some((name, password));
                }
                Err(why) => self.say(Kind::Error, &format!("Not sent: {why}")),
            },
        }
        Ok(())
    }

    /// `/help`: the client's commands, then the protocol's.
    fn help(&mut self) {
        self.say(
            Kind::Plain,
            "Type a line to say it to everyone. Commands (any case):",
        );
        for s in SLASH {
            self.say(Kind::Plain, &format!("  {:<24}{}", s.usage, s.what));
        }
        self.say(
            Kind::Plain,
            "Protocol commands work as typed too (PROTOCOL.md):",
        );
        self.say(Kind::Plain, &format!("  {WIRE_VERBS}"));
        self.say(
            Kind::Plain,
            "Keys: arrows, Home/End, Backspace/Delete, Ctrl-W word, Ctrl-U line, Esc cancels",
        );
    }

    /// The server went away: say so, reconnect with backoff, join with the same name
    /// again, and say when back. The input line is left alone all the while.
    async fn reconnect(&mut self) -> Result<Flow, ConnError> {
        let addr = format!("{}:{}", self.host, self.port);
        self.say(
            Kind::Error,
            &format!("Lost the connection to {addr}; reconnecting (what you type is kept)..."),
        );
        let mut delay = FIRST_BACKOFF;
        loop {
            if let Flow::Stop = self.pause(delay).await {
                return Ok(Flow::Stop);
            }
            delay = (delay * 2).min(MAX_BACKOFF);
            let Ok((reader, writer)) = conn::connect(&self.host, self.port, Framing::Framed).await
            else {
                continue;
            };
            self.session.reader = reader;
            self.session.writer = writer;
            self.assembler = Assembler::default();
            if self.rejoin().await? {
                if let Some(room) = &self.room {
                    // Back into the room we were in; its history shows what we missed.
                    let _ = self.session.writer.send(&[format!("ENTER {room}")]).await;
                }
                let name = self.name.clone().unwrap_or_default();
                self.say(
                    Kind::Notice,
                    &format!("Back: reconnected to {addr} as {name}."),
                );
                self.update_prompt();
                return Ok(Flow::Continue);
            }
            if self.quitting {
                self.session.leave("QUIT").await;
                return Ok(Flow::Stop);
            }
        }
    }

    /// Waits `delay` while the keyboard keeps working; `Stop` when the user leaves.
    async fn pause(&mut self, delay: Duration) -> Flow {
        let ui = &mut self.session.ui;
        let left = async_std::future::timeout(delay, async {
            while !matches!(ui.input(false).await, UserInput::Leave) {}
        })
        .await;
        match left {
            Ok(()) => Flow::Stop,
            Err(_) => Flow::Continue,
        }
    }

    /// Sends JOIN with our name on a new connection (AUTH, when this name is an account we
    /// proved); `true` once the server said HELLO. Sets `quitting` when the user left
    /// meanwhile.
    async fn rejoin(&mut self) -> Result<bool, ConnError> {
        let Some(name) = self.name.clone() else {
            return Ok(false);
        };
        let command = match &self.account {
            Some((who, password)) if *who == name => format!("AUTH {name} {password}"),
            _ => format!("JOIN {name}"),
        };
        if self.session.writer.send(&[command]).await.is_err() {
            return Ok(false);
        }
        loop {
            let Some(event) = self.session.next_event_within(false, ANSWER_TIMEOUT).await else {
                return Ok(false);
            };
            match event {
                Event::Server(Ok(Some(msg))) => match self.assembler.feed(&msg) {
                    Some(Incoming::Hello(_)) => return Ok(true),
                    // The name is still held (the old connection is not gone yet): later.
                    Some(Incoming::Reply { refused: true, .. }) => return Ok(false),
                    _ => {}
                },
                Event::Server(_) => return Ok(false),
                Event::User(UserInput::Leave) => {
                    self.quitting = true;
                    return Ok(false);
                }
                Event::User(_) => {}
            }
        }
    }
}

/// What a typed line (not a `/` command) is on the wire, once `joined` or before: a
/// protocol command as typed; its verb in any case when the line parses that way; else
/// said in `room` (a broadcast when that is the lobby), or before joining the name to join
/// with.
fn to_wire(line: &str, joined: bool, room: Option<&str>) -> Result<String, String> {
    if line.trim().is_empty() {
        return Ok(String::new());
    }
    let (verb, rest) = match line.split_once(' ') {
        Some((verb, rest)) => (verb, Some(rest)),
        None => (line, None),
    };
    if syntax(verb).is_some() {
        // A protocol command as typed: checked as it is.
        return Ok(line.to_owned());
    }
    let upper = verb.to_ascii_uppercase();
    if syntax(&upper).is_some() {
        let wire = match rest {
            Some(rest) => format!("{upper} {rest}"),
            None => upper,
        };
        if Command::parse(&wire).is_ok() {
            return Ok(wire);
        }
    }
    match (joined, rest) {
        (true, _) => Ok(match room {
            Some(room) => format!("SAY {room} {line}"),
            None => format!("BCST {line}"),
        }),
        (false, None) => Ok(format!("JOIN {line}")),
        (false, Some(_)) => Err("join first: type your name (one word), or /join <name>".into()),
    }
}

/// The client command closest to a mistyped one: a prefix of it, or at most two edits
/// away (on a tie, one with the same first letter).
fn suggest(typed: &str) -> Option<&'static str> {
    if typed.is_empty() {
        return None;
    }
    if let Some(s) = SLASH.iter().find(|s| s.name.starts_with(typed)) {
        return Some(s.name);
    }
    SLASH
        .iter()
        .map(|s| {
            let other_start = !s.name.starts_with(typed.chars().next().unwrap_or(' '));
            (edit_distance(typed, s.name), other_start, s.name)
        })
        .filter(|(d, _, _)| *d <= 2)
        .min_by_key(|(d, other_start, _)| (*d, *other_start))
        .map(|(_, _, name)| name)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistyped_commands_get_a_suggestion() {
        assert_eq!(suggest("mgs"), Some("msg"));
        assert_eq!(suggest("lst"), Some("list"));
        assert_eq!(suggest("he"), Some("help"));
        assert_eq!(suggest("qiut"), Some("quit"));
        assert_eq!(suggest("xyzzy"), None);
    }

    #[test]
    fn typed_lines_become_commands_or_chat() {
        let wire = |line, joined| to_wire(line, joined, None);
        assert_eq!(
            wire("hello everyone", true),
            Ok("BCST hello everyone".into())
        );
        assert_eq!(wire("list", true), Ok("LIST".into()));
        assert_eq!(wire("msg B hi", true), Ok("MSG B hi".into()));
        assert_eq!(wire("join alice", false), Ok("JOIN alice".into()));
        assert_eq!(
            wire("read this first", true),
            Ok("BCST read this first".into())
        );
        assert_eq!(wire("MSG B", true), Ok("MSG B".into()));
        assert_eq!(wire("日本語 👍🏽", true), Ok("BCST 日本語 👍🏽".into()));
        assert_eq!(wire("alice", false), Ok("JOIN alice".into()));
        assert!(wire("hello there", false).is_err());
        assert_eq!(wire("", true), Ok(String::new()));
        assert_eq!(
            to_wire("hi dev", true, Some("#dev")),
            Ok("SAY #dev hi dev".into())
        );
    }

    #[test]
    fn every_slash_command_is_listed_once() {
        for (i, s) in SLASH.iter().enumerate() {
            assert_eq!(s.name, s.name.to_lowercase());
            assert!(s.usage.starts_with(&format!("/{}", s.name)));
            assert!(SLASH[i + 1..].iter().all(|o| o.name != s.name));
        }
    }
}
