//! Interactive chat (stdin is a terminal): type commands while messages arrive.
//!
//! One event loop waits on the socket and the keyboard together (seed 003). Each line is
//! checked by the [`Composer`] before anything is sent; COMPOSE and POST ask for their
//! follow-up lines with their own prompts, and the whole command is sent only once every
//! part is valid. Lines starting with `/` are the client's own commands (`/help`...).

use protocol::command::syntax;

use crate::conn::ConnError;
use crate::incoming::{Assembler, Incoming};
use crate::terminal::{classify, Kind};
use crate::ui::{Event, Session, UserInput};
use crate::validate::{Composer, Policy, Step};

/// Server commands listed by `/help`: the verb, its alias, and what it does.
const COMMANDS: &[(&str, Option<&str>, &str)] = &[
    ("JOIN", Some("NAME"), "take a name"),
    ("LIST", Some("GETNAMES"), "who is connected"),
    ("MSG", Some("MESG"), "a direct message"),
    ("BCST", None, "a message to everyone"),
    ("LOGIN", None, "take a name and open its mailbox"),
    ("COMPOSE", None, "leave a message in a mailbox"),
    ("READ", None, "take your oldest stored message"),
    ("REGISTER", None, "register a machine"),
    ("DEREGISTER", None, "deregister it"),
    ("POST", None, "a broadcast to registered machines"),
    ("SHUTDOWN", None, "stop the server (if it allows)"),
    ("PING", None, "check the server is alive"),
    ("QUIT", Some("EXIT"), "leave"),
];

/// Client commands listed by `/help`.
const CLIENT_COMMANDS: &[&str] = &[
    "/compose <name> [text]   COMPOSE made easy (asks for the text if not given)",
    "/post <user@machine>     POST made easy (asks for the subject and body)",
    "/signup <name>           create an account (asks for the password, not shown)",
    "/auth <name>             sign in to your account (asks for the password, not shown)",
    "/quit                    leave (also Ctrl-C, or Ctrl-D on an empty line)",
    "/help                    this list",
    "Keys: arrows, Home/End, Backspace/Delete, Ctrl-W word, Ctrl-U line, Esc cancels",
];

/// The interactive chat's state.
struct Chat {
    /// Socket, keyboard and screen.
    session: Session,
    /// Checks lines and holds commands that need follow-ups.
    composer: Composer,
    /// Puts structured broadcasts back together.
    assembler: Assembler,
    /// Our name once the server said `HELLO <name>`, or counted a LOGIN's mail (prompt).
    name: Option<String>,
    /// The name a LOGIN we sent asked for, until its reply (a bare count) comes.
    login: Option<String>,
    /// Whether we sent QUIT/EXIT, so the server's close is expected.
    quitting: bool,
}

/// What the loop does next.
enum Flow {
    /// Keep going.
    Continue,
    /// Leave with success.
    Stop,
}

/// Runs the interactive chat until the user leaves, the server quits, or the link fails.
pub async fn run(session: Session, host: &str, port: u16) -> Result<(), ConnError> {
    let mut chat = Chat {
        session,
        composer: Composer::new(Policy::Interactive),
        assembler: Assembler::default(),
        name: None,
        login: None,
        quitting: false,
    };
    chat.say(
        Kind::Plain,
        &format!("Connected to {host}:{port}. Type JOIN <name> to start, /help for help."),
    );
    chat.update_prompt();
    loop {
        let flow = match chat.session.next_event(true).await {
            Event::Server(Ok(Some(msg))) => chat.server(msg).await?,
            Event::Server(Ok(None)) if chat.quitting => Flow::Stop,
            Event::Server(Ok(None)) => return Err(ConnError::Closed),
            Event::Server(Err(e)) => return Err(e),
            Event::User(UserInput::Line(line)) => chat.user(&line).await?,
            Event::User(UserInput::Cancel) => {
                if chat.composer.pending().is_some() {
                    chat.composer.cancel();
                    chat.say(Kind::Plain, "Cancelled; nothing was sent.");
                    chat.update_prompt();
                }
                Flow::Continue
            }
            Event::User(UserInput::Leave | UserInput::Ended) => {
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
    fn say(&mut self, kind: Kind, text: &str) {
        self.session.ui.say(kind, text);
    }

    /// The prompt says what the next line is: a follow-up, or a command from `name`.
    fn prompt(&self) -> String {
        match (self.composer.pending(), &self.name) {
            (Some(field), _) => format!("{}> ", field.label()),
            (None, Some(name)) => format!("{name}> "),
            (None, None) => "> ".to_owned(),
        }
    }

    fn update_prompt(&mut self) {
        let prompt = self.prompt();
        self.session.ui.set_prompt(&prompt);
    }

    /// Shows one server message (or acts on it).
    async fn server(&mut self, msg: String) -> Result<Flow, ConnError> {
        match self.assembler.feed(msg) {
            None => {}
            Some(Incoming::Ping) => self.session.writer.send(&["PONG"]).await?,
            Some(Incoming::Quit(reason)) => {
                self.say(Kind::Notice, &format!("* QUIT {reason}"));
                self.say(Kind::Plain, "The server is shutting down. Goodbye.");
                return Ok(Flow::Stop);
            }
            Some(Incoming::Error(reason)) => self.say(Kind::Error, &format!("* ERROR {reason}")),
            Some(Incoming::Notice(text)) => self.say(Kind::Notice, &format!("* {text}")),
            Some(Incoming::Post {
                sender,
                subject,
                body,
            }) => {
                self.say(Kind::Peer, &format!("* POST from {sender}: {subject}"));
                self.say(Kind::Peer, &format!("  {body}"));
            }
            Some(Incoming::Line(line)) => {
                let hello = line
                    .strip_prefix("HELLO ")
                    .filter(|n| protocol::Name::new(n).is_ok());
                let login = match &self.login {
                    Some(_) if line.parse::<usize>().is_ok() => self.login.take(),
                    _ => None,
                };
                if let Some(name) = hello.map(str::to_owned).or(login) {
                    self.name = Some(name);
                    self.update_prompt();
                }
                self.say(classify(&line), &line);
            }
        }
        Ok(Flow::Continue)
    }

    /// Handles one entered line: a client command, or a (part of a) server command.
    async fn user(&mut self, line: &str) -> Result<Flow, ConnError> {
        if self.composer.pending().is_none() {
            if let Some(rest) = line.strip_prefix('/') {
                return self.client_command(rest).await;
            }
        }
        let step = self.composer.feed(line);
        let flow = self.step(step).await?;
        self.update_prompt();
        Ok(flow)
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
        Ok(Flow::Continue)
    }

    /// `/help`, `/quit`, `/compose`, `/post`.
    async fn client_command(&mut self, rest: &str) -> Result<Flow, ConnError> {
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        match verb {
            "help" => self.help(),
            "quit" => {
                self.session.leave("QUIT").await;
                return Ok(Flow::Stop);
            }
            "compose" => {
                let (to, text) = args.split_once(' ').unwrap_or((args, ""));
                let step = self.composer.feed(&format!("COMPOSE {to}"));
                let step = match step {
                    Step::Need(_) if !text.is_empty() => self.composer.feed(text),
                    other => other,
                };
                self.step(step).await?;
            }
            "post" => {
                let step = self.composer.feed(&format!("POST {args}"));
                self.step(step).await?;
            }
            "signup" | "auth" => self.password_command(rest).await?,
            _ => self.say(
                Kind::Error,
                &format!("Unknown client command /{verb}: /help lists the commands."),
            ),
        }
        self.update_prompt();
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
                Ok(command) => self.session.writer.send(&[command]).await?,
                Err(why) => self.say(Kind::Error, &format!("Not sent: {why}")),
            },
        }
        Ok(())
    }

    fn help(&mut self) {
        self.say(
            Kind::Plain,
            "Server commands (case-sensitive; names are 1-32 letters, digits, '_', '-' or '.'):",
        );
        for (verb, alias, what) in COMMANDS {
            let usage = syntax(verb).unwrap_or(verb);
            let alias = alias.map(|a| format!(" (or {a})")).unwrap_or_default();
            self.say(Kind::Plain, &format!("  {usage}{alias}: {what}"));
        }
        self.say(Kind::Plain, "Client commands:");
        for line in CLIENT_COMMANDS {
            self.say(Kind::Plain, &format!("  {line}"));
        }
    }
}
