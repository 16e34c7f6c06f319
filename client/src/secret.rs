//! Passwords for `/signup <name>` and `/auth <name>`: read without echo at a terminal, or
//! taken from the `CHAT_PASSWORD` environment variable by scripts; never put in history,
//! never shown; the interactive client keeps the one that proved its account in memory only,
//! to sign in again after a reconnect.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use protocol::{Name, Password};

/// The environment variable a script passes its password in.
pub const PASSWORD_ENV: &str = "CHAT_PASSWORD";

/// The server command for `/signup` or `/auth` (`verb` is `SIGNUP` or `AUTH`), checked
/// locally first; `Err` says why nothing is sent.
pub fn command(verb: &str, name: &str, password: &str) -> Result<String, String> {
    check_name(name)?;
    if Password::new(password).is_none() {
        return Err(protocol::ParseErrorKind::Password.to_string());
    }
    if let Err(e) = protocol::text::check_printable(password) {
        return Err(format!("Invalid Password: {e}"));
    }
    Ok(format!("{verb} {name} {password}"))
}

/// Checks the name given to `/signup` or `/auth`.
pub fn check_name(name: &str) -> Result<(), String> {
    Name::new(name)
        .map(|_| ())
        .map_err(|e| format!("Invalid Name: {e}"))
}

/// Which client command a line is, if it is `/signup <name>` or `/auth <name>`: the server
/// verb and the name.
pub fn parse(line: &str) -> Option<(&'static str, &str)> {
    let rest = line.strip_prefix('/')?;
    let (verb, name) = rest.split_once(' ').unwrap_or((rest, ""));
    match verb {
        "signup" => Some(("SIGNUP", name)),
        "auth" => Some(("AUTH", name)),
        _ => None,
    }
}

/// Scripted mode: `/signup <name>` and `/auth <name>` become the server command with the
/// password from [`PASSWORD_ENV`]; `None` for any other line.
pub fn script_line(line: &str) -> Option<Result<String, String>> {
    let (verb, name) = parse(line)?;
    Some(match std::env::var(PASSWORD_ENV) {
        Ok(password) => command(verb, name, &password),
        Err(_) => Err(format!(
            "{PASSWORD_ENV} is not set (the password for {verb})"
        )),
    })
}

/// What a keystroke does to a password being typed.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretKey {
    /// Keep reading.
    More,
    /// Enter: the password is complete.
    Done,
    /// Esc, Ctrl-C or Ctrl-D: give up, send nothing.
    Cancel,
}

/// Applies one keystroke to the hidden password `typed` (nothing is echoed).
pub fn key(typed: &mut String, key: KeyEvent) -> SecretKey {
    if key.kind == KeyEventKind::Release {
        return SecretKey::More;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c' | 'd') if ctrl => SecretKey::Cancel,
        KeyCode::Char('j' | 'm') if ctrl => SecretKey::Done,
        KeyCode::Char('u') if ctrl => {
            typed.clear();
            SecretKey::More
        }
        KeyCode::Char('h') if ctrl => {
            typed.pop();
            SecretKey::More
        }
        KeyCode::Char(_) if ctrl => SecretKey::More,
        KeyCode::Char(c) => {
            typed.push(c);
            SecretKey::More
        }
        KeyCode::Backspace => {
            typed.pop();
            SecretKey::More
        }
        KeyCode::Enter => SecretKey::Done,
        KeyCode::Esc => SecretKey::Cancel,
        _ => SecretKey::More,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn typing_a_password() {
        let mut typed = String::new();
        for c in "secreX".chars() {
            assert_eq!(key(&mut typed, press(KeyCode::Char(c))), SecretKey::More);
        }
        key(&mut typed, press(KeyCode::Backspace));
        key(&mut typed, press(KeyCode::Char('t')));
        assert_eq!(key(&mut typed, press(KeyCode::Enter)), SecretKey::Done);
        assert_eq!(typed, "secret");
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(key(&mut typed, ctrl_c), SecretKey::Cancel);
        assert_eq!(key(&mut typed, press(KeyCode::Esc)), SecretKey::Cancel);
    }

    #[test]
    fn commands_are_checked_locally() {
        assert_eq!(parse("/auth bob"), Some(("AUTH", "bob")));
        assert_eq!(parse("/signup"), Some(("SIGNUP", "")));
        assert_eq!(parse("/post x@y"), None);
        assert_eq!(
            command("AUTH", "bob", "long enough").as_deref(),
            Ok("AUTH bob long enough")
        );
        assert!(command("AUTH", "bob", "short").is_err());
        assert!(command("AUTH", "b b", "long enough").is_err());
        assert!(command("AUTH", "bob", "tab\there!").is_err());
    }
}
