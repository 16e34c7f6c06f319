//! `--menu`: seed 000's broadcast client, a loop of four choices on the chat port.
//!
//! Register this machine, deregister it, compose and send a structured broadcast (sender,
//! subject and body, each checked before anything is sent and asked again when refused),
//! and quit (leaving with success; asking the server to shut down only when the user says
//! so, and only if the server allows it). Each command's success or failure is
//! printed; broadcasts from other machines are shown as they arrive; the client keeps
//! running until the server's quit notice (also after its input ends, when scripted).

use std::env;

use protocol::text::{body, subject};
use protocol::{Classifier, Incoming, Name, Sender};

use crate::conn::ConnError;
use crate::dialog::{check_name, Dialog, OnEnd, Stop};
use crate::terminal::Kind;
use crate::ui::Session;

/// The menu client's state.
struct Menu {
    /// Questions, replies and notices.
    dialog: Dialog,
    /// The machine this connection registered as (the default sender's machine).
    machine: Option<String>,
}

/// Runs the menu until the server quits, the user leaves, or the connection fails.
pub async fn run(session: Session) -> Result<(), ConnError> {
    let mut dialog = Dialog::new(session, true, OnEnd::Linger);
    dialog.farewell = Some("QUIT");
    let mut menu = Menu {
        dialog,
        machine: None,
    };
    match menu.main_loop().await {
        Stop::Quit | Stop::Left => Ok(()),
        Stop::Failed(e) => Err(e),
    }
}

impl Menu {
    /// Shows the choices and carries out each one until a [`Stop`].
    async fn main_loop(&mut self) -> Stop {
        loop {
            self.show_choices();
            let result = match self.dialog.ask("Choice (1-4): ").await {
                Err(stop) => return stop,
                Ok(None) => Ok(()),
                Ok(Some(choice)) => match choice.trim() {
                    "1" => self.register().await,
                    "2" => self.deregister().await,
                    "3" => self.compose().await,
                    "4" => self.quit().await,
                    other => {
                        let msg = format!("{other:?} is not a choice: type 1, 2, 3 or 4.");
                        self.dialog.say(Kind::Error, &msg);
                        Ok(())
                    }
                },
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    fn show_choices(&mut self) {
        let registered = match &self.machine {
            Some(m) => format!(" (registered as {m})"),
            None => String::new(),
        };
        let say = |m: &mut Self, line: &str| m.dialog.say(Kind::Plain, line);
        say(self, &format!("Broadcast menu{registered}:"));
        say(self, "  1) Register this machine");
        say(self, "  2) Deregister this machine");
        say(self, "  3) Compose and send a broadcast");
        say(self, "  4) Quit");
    }

    /// Prints the outcome of a command.
    fn outcome(&mut self, ok: bool, text: &str) {
        if ok {
            self.dialog.say(Kind::Plain, &format!("Success: {text}"));
        } else {
            self.dialog.say(Kind::Error, &format!("Failure: {text}"));
        }
    }

    async fn register(&mut self) -> Result<(), Stop> {
        let default = host_name();
        let prompt = match &default {
            Some(h) => format!("Machine name [{h}]: "),
            None => "Machine name: ".to_owned(),
        };
        let check = |s: &str| check_name("machine name", s);
        let Some(machine) = self
            .dialog
            .ask_valid(&prompt, default.as_deref(), check)
            .await?
        else {
            return Ok(());
        };
        self.dialog.send(&[&format!("REGISTER {machine}")]).await?;
        let reply = self.dialog.reply().await?;
        match read(&reply) {
            Incoming::Registered(m) if m == machine => {
                self.outcome(true, &format!("registered {machine}."));
                self.machine = Some(machine);
            }
            Incoming::AlreadyRegistered(m) if m == machine => {
                let text =
                    format!("{machine} is already registered (this connection now speaks for it).");
                self.outcome(false, &text);
                self.machine = Some(machine);
            }
            _ => self.outcome(false, &reply),
        }
        Ok(())
    }

    async fn deregister(&mut self) -> Result<(), Stop> {
        self.dialog.send(&["DEREGISTER"]).await?;
        let reply = self.dialog.reply().await?;
        match read(&reply) {
            Incoming::Deregistered(machine) => {
                let text = format!("deregistered {machine}.");
                self.outcome(true, &text);
                self.machine = None;
            }
            _ => self.outcome(false, &reply),
        }
        Ok(())
    }

    async fn compose(&mut self) -> Result<(), Stop> {
        let default = self.machine.as_deref().and_then(|m| {
            let user = user_name()?;
            Some(format!("{user}@{m}"))
        });
        let prompt = match &default {
            Some(d) => format!("Sender (user@machine) [{d}]: "),
            None => "Sender (user@machine): ".to_owned(),
        };
        let check_sender = |s: &str| {
            Sender::parse(s)
                .map(drop)
                .map_err(|e| format!("Invalid sender: {e}"))
        };
        let Some(sender) = self
            .dialog
            .ask_valid(&prompt, default.as_deref(), check_sender)
            .await?
        else {
            return Ok(());
        };
        let check_subject = |s: &str| {
            subject(s)
                .map(drop)
                .map_err(|e| format!("Invalid subject: {e}"))
        };
        let Some(subj) = self
            .dialog
            .ask_valid("Subject (1-80 characters): ", None, check_subject)
            .await?
        else {
            return Ok(());
        };
        let check_body = |s: &str| body(s).map(drop).map_err(|e| format!("Invalid body: {e}"));
        let Some(text) = self
            .dialog
            .ask_valid("Body (1-512 characters): ", None, check_body)
            .await?
        else {
            return Ok(());
        };
        self.dialog
            .send(&[&format!("POST {sender}"), &subj, &text])
            .await?;
        let reply = self.dialog.reply().await?;
        match read(&reply) {
            Incoming::Posted(n) => {
                self.outcome(true, &format!("the broadcast reached {n} machine(s)."));
            }
            _ => self.outcome(false, &reply),
        }
        Ok(())
    }

    /// Leaves the menu (status 0); asks the server to shut down only when the user wants
    /// that, and leaves whether or not the server agrees.
    async fn quit(&mut self) -> Result<(), Stop> {
        let answer = self
            .dialog
            .ask("Also shut the server down for everyone? (y/N): ")
            .await?;
        let wanted = answer
            .as_deref()
            .is_some_and(|a| matches!(a.trim().to_lowercase().as_str(), "y" | "yes"));
        if wanted {
            self.dialog.send(&["SHUTDOWN"]).await?;
            // On success the answer is the server's `* QUIT` notice, which ends the dialog.
            // A close with no notice at all is the shutdown we asked for, too.
            match self.dialog.reply().await {
                Ok(reply) => self.outcome(false, &reply),
                Err(Stop::Failed(ConnError::Closed)) => {
                    let text = "The server is shutting down (it closed the connection). Goodbye.";
                    self.dialog.say(Kind::Notice, text);
                    return Err(Stop::Quit);
                }
                Err(stop) => return Err(stop),
            }
        }
        self.dialog.say(Kind::Plain, "Goodbye.");
        Err(self.dialog.leave().await)
    }
}

/// What a one-message reply says, as the protocol crate reads it.
fn read(reply: &str) -> Incoming<'_> {
    Classifier::new().classify(reply)
}

/// This computer's name, when it is a valid machine name (the default for REGISTER).
fn host_name() -> Option<String> {
    let raw = env::var("COMPUTERNAME")
        .or_else(|_| env::var("HOSTNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())?;
    let short = raw.trim().split('.').next()?;
    Name::new(short).ok().map(|n| n.to_string())
}

/// The user's login name, when it is a valid name (the default sender's user part).
fn user_name() -> Option<String> {
    let raw = env::var("USER").or_else(|_| env::var("USERNAME")).ok()?;
    Name::new(raw.trim()).ok().map(|n| n.to_string())
}
