//! The IRC door (`--irc-port`): the IRC client protocol (RFC 1459/2812 as the Modern IRC
//! documents describe it, with the IRCv3 capabilities `server-time`, `message-tags`,
//! `echo-message`, `multi-prefix` and `batch`) over the same core as the chat port: one name
//! space, the same rooms, the same history, the same limits.
//!
//! Registration is `CAP` (optional), `PASS` (accepted and kept for accounts), `NICK` and
//! `USER`; the nick is taken in the hub exactly as a chat-port `JOIN` takes a name, and the
//! newcomer is put in `#lobby`. Every reply goes through [`protocol::irc::put_line`], so no
//! text a user sent can end a line or pass for the server's.
//!
//! Accounts: a nick that has an account (made with `SIGNUP` on the chat port) is taken only
//! by a connection that proved it with SASL `PLAIN` (`CAP REQ sasl`, then `AUTHENTICATE`),
//! checked by the same Argon2id hashes and the same guessing back-off as the chat port's
//! `AUTH`. Like `AUTH`, SASL is offered only over TLS while TLS is on (`CAP LS` lists `sasl`
//! there, and everywhere under `--no-tls`); anyone else asking for such a nick gets `433`.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;

use log::{info, warn};

use protocol::irc::{put_line, LineError, Message};
use protocol::text::MAX_NAME;
use protocol::{Name, RoomName, Stamp, Text};

use crate::cluster::Over;
use crate::connection::{flood_bucket, next_payload};
use crate::event::{Event, IrcCaps, Target, Who};
use crate::history::Entry;
use crate::hub::{Conn, Hub, Joined};
use crate::reader::Reader;
use crate::reason::Disconnect;
use crate::rooms::{fanout, EnterError, Member, Room, RoomError, Rooms, State};
use crate::services::Services;
use crate::session::Origin;

/// The server's name in IRC sources and numerics.
pub const SERVER: &str = "chat-server";
/// Longest line the reader accepts from an IRC client: longer than IRC allows, so that a
/// line that is too long gets `417` and the connection goes on; past this it is closed.
pub const READ_LIMIT: usize = 16 * 1024;
/// Capabilities offered, as `CAP LS` lists them.
const CAPS: &[(&str, u8)] = &[
    ("batch", IrcCaps::BATCH),
    ("echo-message", IrcCaps::ECHO),
    ("message-tags", IrcCaps::MESSAGE_TAGS),
    ("multi-prefix", IrcCaps::MULTI_PREFIX),
    ("server-time", IrcCaps::SERVER_TIME),
];
/// Longest topic, kick reason and away message, in bytes.
const TEXTLEN: usize = 300;
/// Targets one PRIVMSG or NOTICE may name.
const MAX_TARGETS: usize = 4;
/// Bytes of names per `353` line (the line stays well under 512).
const NAMES_PER_LINE: usize = 400;
/// Longest SASL exchange, base64 (a PLAIN message is name, password and two NULs).
const SASL_MAX: usize = 1024;
/// An `AUTHENTICATE` chunk of exactly this size means more follow.
const SASL_CHUNK: usize = 400;

/// Serves one IRC connection until it quits, is closed, or floods.
pub async fn serve(
    hub: &Arc<Hub>,
    services: &Arc<Services>,
    conn: &Arc<Conn>,
    reader: &mut Reader,
    origin: Origin,
) {
    let mut bucket = flood_bucket(&hub.config);
    let mut irc = Irc::new(hub.clone(), services.clone(), conn.clone(), origin);
    loop {
        let Some(payload) = next_payload(reader, hub, conn, &mut bucket).await else {
            break;
        };
        let fanned = hub.fanned();
        let go_on = irc.handle(payload);
        reader.count_fanout(hub.fanned().wrapping_sub(fanned));
        if !go_on {
            break;
        }
        if let Some((name, password)) = irc.reg.as_mut().and_then(|r| r.proving.take()) {
            // Boxed, like every hash-bound wait, with what it needs: an idle connection's task
            // stays small.
            let ip = origin.ip;
            let (name, ok) = Box::pin(async move {
                let ok = services.authenticate(name.as_str(), &password, &ip).await;
                (name, ok)
            })
            .await;
            irc.proved(name, ok);
        }
        if let Some(claiming) = irc.claiming.take() {
            // Boxed too: only a clustered registration or rename waits on Redis. An
            // account made on another node is known there, not yet here.
            let (name, claim, reserved) = Box::pin(async move {
                let (name, over) = *claiming;
                let reserved = over != Over::Anyone && services.has_account(name.as_str()).await;
                let claim = match reserved {
                    true => None,
                    false => hub.claim_name(&name, conn.id, over).await,
                };
                (name, claim, reserved)
            })
            .await;
            irc.claimed(name, claim.is_some(), reserved);
            drop(claim);
        }
    }
    let reason = irc
        .quit_reason
        .take()
        .unwrap_or_else(|| "Connection closed".into());
    irc.close(&reason);
}

/// One IRC connection's state. It lives in the connection's task for as long as the
/// connection does, so what only registration needs is kept apart ([`Registration`]) and
/// dropped once the client is registered, and what can be worked out again (the host, the
/// prefix) is not kept.
struct Irc {
    /// The shared state.
    hub: Arc<Hub>,
    /// Accounts (and the guessing back-off) for SASL.
    services: Arc<Services>,
    /// This connection.
    conn: Arc<Conn>,
    /// What registration needs; `None` once registered.
    reg: Option<Box<Registration>>,
    /// Whether SASL is offered here: over TLS, or anywhere when TLS is off.
    sasl_offered: bool,
    /// The client asked for the `sasl` capability.
    sasl_on: bool,
    /// User mode `+i`.
    invisible: bool,
    /// The account this connection proved with SASL.
    account: Option<Name<'static>>,
    /// A nick whose cluster lease the serve loop takes before registration or a rename
    /// goes on, and how (boxed: rare, and only for a moment).
    claiming: Option<Box<(Name<'static>, Over)>>,
    /// The nick whose cluster lease this connection holds.
    leased: Option<Name<'static>>,
    /// Registered: NICK and USER came, and the nick was taken.
    registered: bool,
    /// The nick once registered (empty before), shared with room member lists.
    nick_arc: Arc<str>,
    /// Rooms joined (possibly stale after a KICK; the rooms know the truth).
    rooms: Vec<Arc<Room>>,
    /// The QUIT message, once QUIT came.
    quit_reason: Option<String>,
}

/// What an IRC connection needs only until it is registered.
struct Registration {
    /// The peer's address (a SASL guesser is slowed per address too).
    ip: std::net::IpAddr,
    /// An `AUTHENTICATE PLAIN` exchange in progress: the base64 received so far.
    sasl: Option<String>,
    /// An account name and password to check (the serve loop hashes off the executor).
    proving: Option<(Name<'static>, String)>,
    /// The nick asked for.
    want_nick: Option<Name<'static>>,
    /// `USER`'s user name (with `~`: no ident lookup) and real name.
    user: Option<(String, String)>,
    /// `PASS`, kept for accounts.
    pass: Option<String>,
    /// `CAP LS` or `CAP REQ` came and `CAP END` not yet: registration waits.
    negotiating: bool,
}

/// A numeric's target before registration.
const STAR: &str = "*";

impl Irc {
    /// A fresh, unregistered connection.
    fn new(hub: Arc<Hub>, services: Arc<Services>, conn: Arc<Conn>, origin: Origin) -> Irc {
        let sasl_offered = origin.secure || hub.config.tls.is_none();
        Irc {
            hub,
            services,
            conn,
            reg: Some(Box::new(Registration {
                ip: origin.ip,
                sasl: None,
                proving: None,
                want_nick: None,
                user: None,
                pass: None,
                negotiating: false,
            })),
            sasl_offered,
            sasl_on: false,
            invisible: false,
            account: None,
            claiming: None,
            leased: None,
            registered: false,
            nick_arc: Arc::from(""),
            rooms: Vec::new(),
            quit_reason: None,
        }
    }

    /// Host shown in its prefix: the peer's address (`:` written as `-` in IPv6, which a
    /// prefix cannot hold).
    fn host(&self) -> String {
        self.conn.label().peer().ip().to_string().replace(':', "-")
    }

    /// Whether CAP negotiation holds registration back.
    fn negotiating(&self) -> bool {
        self.reg.as_ref().is_some_and(|r| r.negotiating)
    }

    /// The capabilities record (always there on this door).
    fn caps(&self) -> u8 {
        self.conn.irc.as_ref().map_or(0, |c| c.bits())
    }

    /// Whether `cap` is on.
    fn has(&self, cap: u8) -> bool {
        self.caps() & cap != 0
    }

    /// The nick numerics are addressed to (`*` before registration).
    fn me(&self) -> &str {
        if self.registered {
            &self.nick_arc
        } else {
            STAR
        }
    }

    /// The nick as a name, once registered (a copy: only a rename and the end need one).
    fn name(&self) -> Option<Name<'static>> {
        self.registered
            .then(|| Name::from_string(self.nick_arc.to_string()).ok())
            .flatten()
    }

    /// Queues raw bytes.
    fn push(&self, render: impl FnOnce(&mut Vec<u8>)) {
        let _ = self.conn.outbox.push_with(render);
    }

    /// Sends a numeric: `:server <code> <me> <middle...> [:<trailing>]`.
    fn num(&self, code: &str, middle: &[&str], trailing: Option<&str>) {
        let me = self.me();
        let mut params = [me; 16];
        match params.get_mut(1..=middle.len()) {
            Some(rest) => {
                rest.copy_from_slice(middle);
                let params = &params[..=middle.len()];
                self.push(|out| put_line(out, None, SERVER, code, params, trailing));
            }
            None => {
                let params: Vec<&str> = std::iter::once(me).chain(middle.iter().copied()).collect();
                self.push(|out| put_line(out, None, SERVER, code, &params, trailing));
            }
        }
    }

    /// Sends a line from the server without a numeric (`CAP`, `PONG`, `ERROR`...).
    fn line(&self, command: &str, middle: &[&str], trailing: Option<&str>) {
        self.push(|out| put_line(out, None, SERVER, command, middle, trailing));
    }

    /// Who this connection is, for events.
    fn who(&self) -> Who<'_> {
        Who {
            nick: &self.nick_arc,
            userhost: self.conn.userhost(),
        }
    }

    /// Handles one received line; `false` when the connection is to close.
    fn handle(&mut self, payload: &[u8]) -> bool {
        let Ok(line) = std::str::from_utf8(payload) else {
            // Not UTF-8: IRC has no encoding of its own, but this server speaks UTF-8 only.
            self.line(
                "NOTICE",
                &[self.me()],
                Some("Lines must be UTF-8; line ignored"),
            );
            return true;
        };
        let message = match Message::parse(line) {
            Ok(m) => m,
            Err(LineError::Empty) => return true,
            Err(LineError::TooLong) | Err(LineError::TagsTooLong) => {
                self.num("417", &[], Some("Input line was too long"));
                return true;
            }
        };
        self.command(&message)
    }

    /// Runs one command.
    fn command(&mut self, m: &Message<'_>) -> bool {
        let verb = m.command.to_ascii_uppercase();
        let registered = self.registered;
        match verb.as_str() {
            "CAP" => self.cap(m),
            "PASS" if registered => self.num("462", &[], Some("You may not reregister")),
            "PASS" => match m.param(0) {
                Some(p) => {
                    if let Some(reg) = &mut self.reg {
                        reg.pass = Some(p.to_owned());
                    }
                }
                None => self.num("461", &["PASS"], Some("Not enough parameters")),
            },
            "NICK" => self.nick(m),
            "USER" => self.user(m),
            "AUTHENTICATE" => self.authenticate(m),
            "PING" => match m.param(0) {
                Some(token) => self.line("PONG", &[SERVER], Some(token)),
                None => self.num("409", &[], Some("No origin specified")),
            },
            "PONG" => {}
            "QUIT" => {
                let reason = m.param(0).map_or_else(
                    || "Quit".to_owned(),
                    |r| format!("Quit: {}", clean(r, TEXTLEN)),
                );
                let bye = format!("Closing link: {} ({reason})", self.host());
                self.push(|out| put_line(out, None, "", "ERROR", &[], Some(&bye)));
                self.quit_reason = Some(reason);
                self.conn.outbox.finish();
                return false;
            }
            _ if !registered => self.num("451", &[], Some("You have not registered")),
            "JOIN" => self.join(m),
            "PART" => self.part(m),
            "PRIVMSG" => self.message(m, false),
            "NOTICE" => self.message(m, true),
            "TOPIC" => self.topic(m),
            "NAMES" => match m.param(0) {
                Some(chans) => {
                    for chan in chans.split(',') {
                        self.names(chan);
                    }
                }
                None => self.num("366", &[STAR], Some("End of /NAMES list")),
            },
            "LIST" => self.list(),
            "WHO" => self.who_query(m),
            "WHOIS" => self.whois(m),
            "MODE" => self.mode(m),
            "KICK" => self.kick(m),
            "AWAY" => self.away(m),
            "LUSERS" => self.lusers(),
            "MOTD" => self.num("422", &[], Some("MOTD File is missing")),
            "USERHOST" => self.userhost(m),
            "ISON" => {
                let on: Vec<String> = m
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter_map(|n| self.hub.user(n).map(|(name, _)| name.as_str().to_owned()))
                    .collect();
                self.num("303", &[], Some(&on.join(" ")));
            }
            _ => self.num("421", &[m.command], Some("Unknown command")),
        }
        true
    }

    /// `CAP LS / LIST / REQ / END`.
    fn cap(&mut self, m: &Message<'_>) {
        let sub = m.param(0).unwrap_or("").to_ascii_uppercase();
        let me = self.me().to_owned();
        match sub.as_str() {
            "LS" => {
                if let Some(reg) = &mut self.reg {
                    reg.negotiating = true;
                }
                let mut all: Vec<&str> = CAPS.iter().map(|(n, _)| *n).collect();
                if self.sasl_offered {
                    // 302 clients learn the mechanisms from the value.
                    all.push(if m.param(1) == Some("302") {
                        "sasl=PLAIN"
                    } else {
                        "sasl"
                    });
                    all.sort_unstable();
                }
                self.line("CAP", &[&me, "LS"], Some(&all.join(" ")));
            }
            "LIST" => {
                let mut on: Vec<&str> = CAPS
                    .iter()
                    .filter(|(_, bit)| self.has(*bit))
                    .map(|(n, _)| *n)
                    .collect();
                if self.sasl_on {
                    on.push("sasl");
                    on.sort_unstable();
                }
                self.line("CAP", &[&me, "LIST"], Some(&on.join(" ")));
            }
            "REQ" => {
                if let Some(reg) = &mut self.reg {
                    reg.negotiating = true;
                }
                let asked = m.param(1).unwrap_or("");
                let mut changes = Vec::new();
                let mut sasl = None;
                for cap in asked.split(' ').filter(|c| !c.is_empty()) {
                    let (on, name) = match cap.strip_prefix('-') {
                        Some(name) => (false, name),
                        None => (true, cap),
                    };
                    match CAPS.iter().find(|(n, _)| *n == name) {
                        Some((_, bit)) => changes.push((*bit, on)),
                        None if name == "sasl" && self.sasl_offered => sasl = Some(on),
                        None => {
                            self.line("CAP", &[&me, "NAK"], Some(asked));
                            return;
                        }
                    }
                }
                if let Some(caps) = &self.conn.irc {
                    for (bit, on) in changes {
                        caps.set(bit, on);
                    }
                }
                if let Some(on) = sasl {
                    self.sasl_on = on;
                }
                self.line("CAP", &[&me, "ACK"], Some(asked));
            }
            "END" => {
                if let Some(reg) = &mut self.reg {
                    reg.negotiating = false;
                }
                self.register();
            }
            _ => self.num(
                "410",
                &[m.param(0).unwrap_or("")],
                Some("Invalid CAP command"),
            ),
        }
    }

    /// `NICK <nick>`.
    fn nick(&mut self, m: &Message<'_>) {
        let Some(wanted) = m.param(0).filter(|n| !n.is_empty()) else {
            return self.num("431", &[], Some("No nickname given"));
        };
        let Ok(name) = Name::new(wanted) else {
            return self.num("432", &[wanted], Some("Erroneous nickname"));
        };
        if let Some(old) = self.name() {
            if old.as_str() == wanted {
                return;
            }
            if self.reserved(wanted) {
                return self.num(
                    "433",
                    &[wanted],
                    Some("Nickname is reserved: it has an account; sign in with SASL PLAIN"),
                );
            }
            let new = name.into_owned();
            let differs = !old.as_str().eq_ignore_ascii_case(new.as_str());
            if self.hub.cluster.is_some() && differs && self.leased.as_ref() != Some(&new) {
                if self.hub.user(wanted).is_some() {
                    return self.num("433", &[wanted], Some("Nickname is already in use"));
                }
                self.claiming = Some(Box::new((new, Over::Stale)));
                return;
            }
            if !self.hub.rename(&self.conn, &old, &new) {
                return self.num("433", &[wanted], Some("Nickname is already in use"));
            }
            return self.renamed(new);
        }
        // While CAP is negotiated (SASL may yet prove the account, whose owner takes the nick
        // back even from an old connection, as AUTH does) the checks wait for registration.
        if !self.negotiating() && self.hub.user(wanted).is_some() && !self.owns(wanted) {
            return self.num("433", &[wanted], Some("Nickname is already in use"));
        }
        if let Some(reg) = &mut self.reg {
            reg.want_nick = Some(name.into_owned());
        }
        self.register();
    }

    /// The outcome of the cluster lease the serve loop took for `name`: registration or the
    /// rename goes on, or `433`.
    fn claimed(&mut self, name: Name<'static>, ok: bool, reserved: bool) {
        if reserved {
            return self.num(
                "433",
                &[name.as_str()],
                Some("Nickname is reserved: it has an account; sign in with SASL PLAIN"),
            );
        }
        if !ok {
            return self.num("433", &[name.as_str()], Some("Nickname is already in use"));
        }
        self.leased = Some(name.clone());
        match self.name() {
            Some(old) => {
                if self.hub.rename(&self.conn, &old, &name) {
                    self.renamed(name);
                } else {
                    self.hub.release_lease(&name, self.conn.id);
                    self.num("433", &[name.as_str()], Some("Nickname is already in use"));
                }
            }
            None => {
                if let Some(reg) = &mut self.reg {
                    reg.want_nick = Some(name);
                }
                self.register();
            }
        }
    }

    /// Whether `nick` has an account that this connection has not proved.
    fn reserved(&self, nick: &str) -> bool {
        self.services.accounts.exists(nick) && !self.owns(nick)
    }

    /// Whether this connection proved the account `nick`.
    fn owns(&self, nick: &str) -> bool {
        self.account
            .as_ref()
            .is_some_and(|a| a.as_str().eq_ignore_ascii_case(nick))
    }

    /// `AUTHENTICATE`: SASL `PLAIN` (RFC 4616) before registration, in chunks of at most
    /// 400 base64 characters (`+` for none); `*` aborts.
    fn authenticate(&mut self, m: &Message<'_>) {
        let Some(arg) = m.param(0) else {
            return self.num("461", &["AUTHENTICATE"], Some("Not enough parameters"));
        };
        if self.account.is_some() {
            return self.num(
                "907",
                &[],
                Some("You have already authenticated using SASL"),
            );
        }
        let sasl_on = self.sasl_on;
        let Some(reg) = self.reg.as_mut().filter(|r| sasl_on && r.proving.is_none()) else {
            return self.num("904", &[], Some("SASL authentication failed"));
        };
        let Some(mut buffer) = reg.sasl.take() else {
            if arg.eq_ignore_ascii_case("PLAIN") {
                reg.sasl = Some(String::new());
                // As the IRCv3 SASL specification shows it: no source.
                return self.push(|out| put_line(out, None, "", "AUTHENTICATE", &["+"], None));
            }
            self.num("908", &["PLAIN"], Some("are available SASL mechanisms"));
            return self.num("904", &[], Some("SASL authentication failed"));
        };
        if arg == "*" {
            return self.num("906", &[], Some("SASL authentication aborted"));
        }
        if arg != "+" {
            buffer.push_str(arg);
        }
        if buffer.len() > SASL_MAX {
            return self.num("905", &[], Some("SASL message too long"));
        }
        if arg.len() == SASL_CHUNK {
            reg.sasl = Some(buffer);
            return;
        }
        match plain(&buffer) {
            Some((name, password)) => {
                let now = Instant::now();
                if let Some(wait) = self.services.auth_wait(name.as_str(), &reg.ip, now) {
                    warn!(
                        "{} SASL {name} refused unchecked: too many failures (wait {wait:?})",
                        self.conn.label()
                    );
                    return self.num("904", &[], Some("SASL authentication failed"));
                }
                reg.proving = Some((name, password));
            }
            None => self.num("904", &[], Some("SASL authentication failed")),
        }
    }

    /// The outcome of the SASL check the serve loop ran: `900` and `903`, or `904`.
    fn proved(&mut self, name: Name<'static>, ok: bool) {
        if !ok {
            warn!("{} SASL {name} failed", self.conn.label());
            return self.num("904", &[], Some("SASL authentication failed"));
        }
        info!("{} proved account {name} (SASL)", self.conn.label());
        let mask = format!("{}!*@{}", self.me(), self.host());
        self.num(
            "900",
            &[&mask, name.as_str()],
            Some(&format!("You are now logged in as {name}")),
        );
        self.num("903", &[], Some("SASL authentication successful"));
        self.account = Some(name);
        self.register();
    }

    /// Takes `new` as this connection's nick everywhere: the rooms' member lists, the prefix;
    /// this connection and everyone sharing a room with it are told.
    fn renamed(&mut self, new: Name<'static>) {
        let nick: Arc<str> = Arc::from(new.as_str());
        let old_nick = self.nick_arc.clone();
        let conn = self.conn.clone();
        let old = Who {
            nick: &old_nick,
            userhost: conn.userhost(),
        };
        let mine = Event::Nick {
            who: old,
            new: &nick,
        };
        let wire = self.conn.wire();
        self.push(|out| mine.render(wire, out));
        self.prune();
        let fanned = self.hub.rooms.rename(&self.rooms, self.conn.id, old, &nick);
        self.hub.add_fanned(fanned);
        self.nick_arc = nick;
    }

    /// `USER <user> <mode> <unused> :<realname>`.
    fn user(&mut self, m: &Message<'_>) {
        if self.registered {
            return self.num("462", &[], Some("You may not reregister"));
        }
        if m.params.len() < 4 || m.params[0].is_empty() {
            return self.num("461", &["USER"], Some("Not enough parameters"));
        }
        let ident: String = m.params[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(10)
            .collect();
        let ident = if ident.is_empty() {
            "user".into()
        } else {
            ident
        };
        if let Some(reg) = &mut self.reg {
            reg.user = Some((format!("~{ident}"), clean(m.params[3], 100)));
        }
        self.register();
    }

    /// Completes registration once NICK and USER came and CAP negotiation is over: takes the
    /// nick, welcomes, and joins `#lobby`.
    fn register(&mut self) {
        let Some(reg) = self
            .reg
            .as_mut()
            .filter(|r| !r.negotiating && r.user.is_some())
        else {
            return;
        };
        let Some(name) = reg.want_nick.take() else {
            return;
        };
        if self.reserved(name.as_str()) {
            return self.num(
                "433",
                &[name.as_str()],
                Some("Nickname is reserved: it has an account; sign in with SASL PLAIN"),
            );
        }
        if self.hub.cluster.is_some() && self.leased.as_ref() != Some(&name) {
            let over = if self.owns(name.as_str()) {
                Over::Anyone
            } else if self.hub.user(name.as_str()).is_some() {
                return self.num("433", &[name.as_str()], Some("Nickname is already in use"));
            } else {
                Over::Stale
            };
            self.claiming = Some(Box::new((name, over)));
            return;
        }
        let joined = if self.owns(name.as_str()) {
            let (joined, old) = self.hub.take_over(&self.conn, &name);
            if let Some(old) = old {
                warn!(
                    "{} took {name} back from {} (same account, SASL)",
                    self.conn.label(),
                    old.label()
                );
                old.outbox.evict(Disconnect::NameTakenBack);
            }
            joined
        } else {
            self.hub.join(&self.conn, &name)
        };
        if joined != Joined::Yes && self.leased.as_ref() == Some(&name) {
            self.hub.release_lease(&name, self.conn.id);
            self.leased = None;
        }
        match joined {
            Joined::Yes => {}
            Joined::Taken => {
                return self.num("433", &[name.as_str()], Some("Nickname is already in use"));
            }
            Joined::Full => {
                warn!("{} refused: Too Many Users", self.conn.label());
                self.push(|out| {
                    put_line(
                        out,
                        None,
                        "",
                        "ERROR",
                        &[],
                        Some("Closing link: Too Many Users"),
                    )
                });
                self.conn.outbox.finish();
                return;
            }
        }
        // Registered: what only registration needed goes.
        let reg = self.reg.take();
        let ident = reg
            .as_ref()
            .and_then(|r| r.user.as_ref())
            .map_or("~user", |u| u.0.as_str());
        let userhost = format!("{ident}@{}", self.host());
        drop(reg);
        if let Some(caps) = &self.conn.irc {
            caps.set_userhost(&userhost);
        }
        self.nick_arc = Arc::from(name.as_str());
        self.registered = true;
        let prefix = format!("{name}!{userhost}");
        info!("{} IRC registered as {prefix}", self.conn.label());
        let version = env!("CARGO_PKG_VERSION");
        self.num(
            "001",
            &[],
            Some(&format!("Welcome to the chat network, {prefix}")),
        );
        self.num(
            "002",
            &[],
            Some(&format!("Your host is {SERVER}, running version {version}")),
        );
        self.num("003", &[], Some("This server was created when it started"));
        self.num("004", &[SERVER, version, "i", "klntov", "klov"], None);
        // The tokens with numbers in them, written once (one string, not one each).
        let numbers = format!(
            "CHANLIMIT=#:{} CHANNELLEN={} NICKLEN={MAX_NAME} AWAYLEN={TEXTLEN} \
             KICKLEN={TEXTLEN} TOPICLEN={TEXTLEN} \
             TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},KICK:1",
            self.hub.rooms.per_user,
            protocol::room::MAX_ROOM
        );
        let mut n = numbers.split(' ');
        let mut next = || n.next().unwrap_or_default();
        let (chanlimit, chanlen, nicklen) = (next(), next(), next());
        let (awaylen, kicklen, topiclen, targmax) = (next(), next(), next(), next());
        self.num(
            "005",
            &[
                "CASEMAPPING=ascii",
                chanlimit,
                "CHANMODES=,k,l,nt",
                chanlen,
                "CHANTYPES=#",
                "MODES=4",
                "NETWORK=chat",
                nicklen,
                "PREFIX=(ov)@+",
                awaylen,
                kicklen,
                topiclen,
                targmax,
            ],
            Some("are supported by this server"),
        );
        self.lusers();
        self.num("422", &[], Some("MOTD File is missing"));
        if let Some(caps) = &self.conn.irc {
            caps.set_away(None);
        }
        let lobby = RoomName::lobby();
        self.enter(&lobby, None);
    }

    /// `251`–`255`: how many are here.
    fn lusers(&self) {
        let users = self.hub.user_count().to_string();
        let rooms = self.hub.rooms.count().to_string();
        self.num(
            "251",
            &[],
            Some(&format!(
                "There are {users} users and 0 invisible on 1 servers"
            )),
        );
        self.num("254", &[&rooms], Some("channels formed"));
        self.num(
            "255",
            &[],
            Some(&format!("I have {users} clients and 0 servers")),
        );
    }

    /// This connection as a room member.
    fn member(&self) -> Member {
        Member {
            nick: self.nick_arc.clone(),
            conn: self.conn.clone(),
            op: false,
            voice: false,
        }
    }

    /// Drops rooms this connection was kicked out of.
    fn prune(&mut self) {
        let id = self.conn.id;
        self.rooms.retain(|r| r.has(id));
    }

    /// `JOIN <chans> [<keys>]` (`JOIN 0` leaves every room).
    fn join(&mut self, m: &Message<'_>) {
        let Some(chans) = m.param(0) else {
            return self.num("461", &["JOIN"], Some("Not enough parameters"));
        };
        if chans == "0" {
            let rooms: Vec<Arc<Room>> = self.rooms.clone();
            for room in rooms {
                self.leave(&room, None);
            }
            return;
        }
        let mut keys = m.param(1).unwrap_or("").split(',');
        for chan in chans.split(',') {
            let key = keys.next().filter(|k| !k.is_empty());
            match RoomName::new(chan) {
                Ok(room) => self.enter(&room, key),
                Err(_) => self.num("403", &[chan], Some("No such channel")),
            }
        }
    }

    /// Enters one room and sends what a JOIN shows: the JOIN, topic, names, history.
    fn enter(&mut self, name: &RoomName<'_>, key: Option<&str>) {
        self.prune();
        if self.rooms.len() >= self.hub.rooms.per_user {
            return self.num(
                "405",
                &[name.as_str()],
                Some("You have joined too many channels"),
            );
        }
        let announce = !name.is_lobby() || self.hub.announce();
        let entered = {
            let this = &*self;
            self.hub
                .rooms
                .enter(name, self.member(), key, announce, |room, st| {
                    this.welcome(room, st);
                })
        };
        match entered {
            Ok((room, fanned)) => {
                self.hub.add_fanned(fanned);
                // Exactly as long as needed: the list stays as long as the connection.
                self.rooms.reserve_exact(1);
                self.rooms.push(room);
            }
            Err(EnterError::Already) => {}
            Err(EnterError::Locked) => {
                self.num("475", &[name.as_str()], Some("Cannot join channel (+k)"))
            }
            Err(EnterError::Full) => {
                self.num("471", &[name.as_str()], Some("Cannot join channel (+l)"))
            }
        }
    }

    /// What a joiner sees, sent while the room is locked (see [`Rooms::enter`]).
    fn welcome(&self, room: &Room, st: &State) {
        let chan = room.name.as_str();
        let wire = self.conn.wire();
        let join = Event::Join {
            who: self.who(),
            room: chan,
        };
        self.push(|out| join.render(wire, out));
        if let Some(topic) = &st.topic {
            self.num("332", &[chan], Some(topic.text.as_str()));
            let at = (topic.at_ms / 1000).to_string();
            self.num("333", &[chan, &topic.by, &at], None);
        }
        // A lobby past the notice limit is not listed to each newcomer (that would cost
        // the square of its size); its members are still there for WHO and messages.
        if !room.name.is_lobby() || st.members.len() <= self.hub.config.notice_limit {
            self.names_of(chan, st);
        } else {
            self.num("366", &[chan], Some("End of /NAMES list"));
        }
        self.history(chan, &room.history_within(self.hub.history_room()));
    }

    /// Replays a room's history: in a `chathistory` batch with the original times when the
    /// client takes batches, with `time` tags when it takes server-time.
    fn history(&self, chan: &str, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let batch = self.has(IrcCaps::BATCH);
        let time = self.has(IrcCaps::SERVER_TIME);
        let id = format!("h{}x{}", self.conn.id, entries.len());
        self.push(|out| {
            if batch {
                let open = format!("+{id}");
                put_line(
                    out,
                    None,
                    SERVER,
                    "BATCH",
                    &[&open, "chathistory", chan],
                    None,
                );
            }
            for e in entries {
                let mut tags = Vec::new();
                if batch {
                    tags.push(format!("batch={id}"));
                }
                if time || batch {
                    tags.push(format!("time={}", Stamp(e.time_ms)));
                }
                let tags = tags.join(";");
                let verb = if e.notice { "NOTICE" } else { "PRIVMSG" };
                put_line(
                    out,
                    (!tags.is_empty()).then_some(tags.as_str()),
                    &e.who().prefix(),
                    verb,
                    &[chan],
                    Some(e.text.as_str()),
                );
            }
            if batch {
                let close = format!("-{id}");
                put_line(out, None, SERVER, "BATCH", &[&close], None);
            }
        });
    }

    /// `353` lines and `366` for a room whose state is `st` (written from the member list
    /// without a string per member: a newcomer to a big room is listed its whole room).
    fn names_of(&self, chan: &str, st: &State) {
        let multi = self.has(IrcCaps::MULTI_PREFIX);
        let mut names: Vec<(&str, &str)> = st
            .members
            .values()
            .map(|m| {
                let status = match (m.op, m.voice && (multi || !m.op)) {
                    (true, true) => "@+",
                    (true, false) => "@",
                    (false, true) => "+",
                    (false, false) => "",
                };
                (status, &*m.nick)
            })
            // Members on the other nodes of a cluster (their modes stay with their node).
            .chain(st.remote.values().map(|r| ("", &*r.nick)))
            .collect();
        names.sort_unstable_by(|a, b| {
            a.0.bytes()
                .chain(a.1.bytes())
                .cmp(b.0.bytes().chain(b.1.bytes()))
        });
        let mut line = String::with_capacity(NAMES_PER_LINE);
        for (status, nick) in names {
            let len = status.len() + nick.len();
            if !line.is_empty() && line.len() + len + 1 > NAMES_PER_LINE {
                self.num("353", &["=", chan], Some(&line));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(status);
            line.push_str(nick);
        }
        if !line.is_empty() {
            self.num("353", &["=", chan], Some(&line));
        }
        self.num("366", &[chan], Some("End of /NAMES list"));
    }

    /// `NAMES <chan>`.
    fn names(&self, chan: &str) {
        match self.hub.rooms.get(chan) {
            Some(room) => {
                let st = room.read();
                self.names_of(room.name.as_str(), &st);
            }
            None => self.num("366", &[chan], Some("End of /NAMES list")),
        }
    }

    /// Leaves `room`, telling its members and this connection.
    fn leave(&mut self, room: &Arc<Room>, reason: Option<&str>) -> bool {
        let id = self.conn.id;
        let chan = room.name.as_str();
        let left = self.hub.rooms.leave(room, id, reason, |m| {
            let who = m.who();
            let event = Event::Part {
                who,
                room: chan,
                reason,
            };
            let wire = self.conn.wire();
            let _ = self.conn.outbox.push_with(|out| event.render(wire, out));
            Some(room.fanout(None, &event))
        });
        self.rooms.retain(|r| !Arc::ptr_eq(r, room));
        match left {
            Some(fanned) => {
                self.hub.add_fanned(fanned);
                true
            }
            None => false,
        }
    }

    /// `PART <chans> [:reason]`.
    fn part(&mut self, m: &Message<'_>) {
        let Some(chans) = m.param(0) else {
            return self.num("461", &["PART"], Some("Not enough parameters"));
        };
        let reason = m.param(1).map(|r| clean(r, TEXTLEN));
        for chan in chans.split(',') {
            match self.hub.rooms.get(chan) {
                None => self.num("403", &[chan], Some("No such channel")),
                Some(room) => {
                    if !self.leave(&room, reason.as_deref()) {
                        self.num("442", &[chan], Some("You're not on that channel"));
                    }
                }
            }
        }
    }

    /// `PRIVMSG` / `NOTICE <targets> :<text>` (a NOTICE is never answered with an error).
    fn message(&mut self, m: &Message<'_>, notice: bool) {
        let verb = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(targets) = m.param(0).filter(|t| !t.is_empty()) else {
            if !notice {
                self.num("411", &[], Some(&format!("No recipient given ({verb})")));
            }
            return;
        };
        let raw = m.param(1).unwrap_or("");
        let cleaned = clean(raw, protocol::DEFAULT_MAX_MESSAGE);
        let Ok(text) = Text::non_empty(&cleaned, protocol::DEFAULT_MAX_MESSAGE) else {
            if !notice && raw.is_empty() {
                self.num("412", &[], Some("No text to send"));
            }
            return;
        };
        let now = protocol::room::now_ms();
        let echo = self.has(IrcCaps::ECHO);
        for target in targets.split(',').take(MAX_TARGETS) {
            if target.starts_with('#') {
                let Some(room) = self.hub.rooms.get(target) else {
                    if !notice {
                        self.num("403", &[target], Some("No such channel"));
                    }
                    continue;
                };
                match self
                    .hub
                    .rooms
                    .say(&room, self.conn.id, self.who(), &text, notice, echo, now)
                {
                    Ok(fanned) => self.hub.add_fanned(fanned),
                    Err(_) if notice => {}
                    Err(_) => self.num("404", &[target], Some("Cannot send to channel")),
                }
                continue;
            }
            let Some((name, to)) = self.hub.user(target) else {
                let event = Event::Message {
                    from: self.who(),
                    to: Target::User(target),
                    text: &text,
                    notice,
                    time_ms: now,
                };
                if self.hub.deliver_remote(target, &event) {
                    if echo {
                        let wire = self.conn.wire();
                        self.push(|out| event.render(wire, out));
                    }
                } else if !notice {
                    self.num("401", &[target], Some("No such nick/channel"));
                }
                continue;
            };
            let event = Event::Message {
                from: self.who(),
                to: Target::User(name.as_str()),
                text: &text,
                notice,
                time_ms: now,
            };
            self.hub.deliver(name.as_str(), &event);
            if echo {
                let wire = self.conn.wire();
                self.push(|out| event.render(wire, out));
            }
            if !notice {
                if let Some(away) = to.irc.as_ref().and_then(|c| c.away()) {
                    self.num("301", &[name.as_str()], Some(&away));
                }
            }
        }
    }

    /// `TOPIC <chan> [:text]`.
    fn topic(&mut self, m: &Message<'_>) {
        let Some(chan) = m.param(0) else {
            return self.num("461", &["TOPIC"], Some("Not enough parameters"));
        };
        let Some(room) = self.hub.rooms.get(chan) else {
            return self.num("403", &[chan], Some("No such channel"));
        };
        let chan = room.name.as_str();
        let Some(text) = m.param(1) else {
            let st = room.read();
            return match &st.topic {
                Some(t) => {
                    self.num("332", &[chan], Some(t.text.as_str()));
                    let at = (t.at_ms / 1000).to_string();
                    self.num("333", &[chan, &t.by, &at], None);
                }
                None => self.num("331", &[chan], Some("No topic is set")),
            };
        };
        let cleaned = clean(text, TEXTLEN);
        let Ok(text) = Text::new(&cleaned, TEXTLEN) else {
            return;
        };
        match self.hub.rooms.set_topic(&room, self.conn.id, &text) {
            Ok(fanned) => self.hub.add_fanned(fanned),
            Err(RoomError::NotOperator) => {
                self.num("482", &[chan], Some("You're not channel operator"))
            }
            Err(_) => self.num("442", &[chan], Some("You're not on that channel")),
        }
    }

    /// `LIST`.
    fn list(&self) {
        self.num("321", &["Channel"], Some("Users  Name"));
        for (name, members, topic) in self.hub.rooms.list() {
            let n = members.to_string();
            self.num("322", &[name.as_str(), &n], Some(&topic));
        }
        self.num("323", &[], Some("End of /LIST"));
    }

    /// One `352` line.
    fn who_line(&self, chan: &str, m: &Member, status: &str) {
        let who = m.who();
        let (user, host) = who.user_host();
        let away = m.conn.irc.as_ref().is_some_and(|c| c.away().is_some());
        let flags = format!("{}{status}", if away { "G" } else { "H" });
        self.num(
            "352",
            &[chan, user, host, SERVER, &m.nick, &flags],
            Some(&format!("0 {}", m.nick)),
        );
    }

    /// `WHO <chan|nick>`.
    fn who_query(&self, m: &Message<'_>) {
        let mask = m.param(0).unwrap_or("*");
        if mask.starts_with('#') {
            if let Some(room) = self.hub.rooms.get(mask) {
                let st = room.read();
                let multi = self.has(IrcCaps::MULTI_PREFIX);
                for member in st.members.values() {
                    let status = prefixes(member, multi);
                    self.who_line(room.name.as_str(), member, &status);
                }
            }
        } else if let Some((name, conn)) = self.hub.user(mask) {
            if let Some(member) = self.find_member(&name, &conn) {
                self.who_line(STAR, &member, "");
            }
        }
        self.num("315", &[mask], Some("End of WHO list"));
    }

    /// A member record for the holder of `name` (from a room it is in, else made up).
    fn find_member(&self, name: &Name<'_>, conn: &Arc<Conn>) -> Option<Member> {
        let rooms = self.hub.rooms.rooms_of(conn.id);
        let found = rooms
            .iter()
            .find_map(|r| r.read().members.get(&conn.id).cloned());
        Some(found.unwrap_or_else(|| Member {
            nick: Arc::from(name.as_str()),
            conn: conn.clone(),
            op: false,
            voice: false,
        }))
    }

    /// `WHOIS [<server>] <nick>`.
    fn whois(&self, m: &Message<'_>) {
        let Some(nick) = m.params.last().copied() else {
            return self.num("431", &[], Some("No nickname given"));
        };
        let Some((name, conn)) = self.hub.user(nick) else {
            if let Some((name, node)) = self.hub.remote_user(nick) {
                // On another node of the cluster: its name and where, no more.
                let name = name.as_str();
                self.num("311", &[name, name, "chat", STAR], Some(name));
                let node = format!("connected to another server of the cluster ({node})");
                self.num("312", &[name, SERVER], Some(&node));
                return self.num("318", &[name], Some("End of /WHOIS list"));
            }
            self.num("401", &[nick], Some("No such nick/channel"));
            return self.num("318", &[nick], Some("End of /WHOIS list"));
        };
        let Some(member) = self.find_member(&name, &conn) else {
            return;
        };
        let who = member.who();
        let (user, host) = who.user_host();
        let door = if conn.irc.is_some() {
            "IRC port"
        } else {
            "chat port"
        };
        self.num(
            "311",
            &[name.as_str(), user, host, STAR],
            Some(name.as_str()),
        );
        let rooms = self.hub.rooms.rooms_of(conn.id);
        let chans: Vec<String> = Rooms::names_of(&rooms, conn.id)
            .into_iter()
            .map(|(r, op, voice)| {
                format!(
                    "{}{}{r}",
                    if op { "@" } else { "" },
                    if voice { "+" } else { "" }
                )
            })
            .collect();
        if !chans.is_empty() {
            self.num("319", &[name.as_str()], Some(&chans.join(" ")));
        }
        self.num(
            "312",
            &[name.as_str(), SERVER],
            Some(&format!("connected on the {door}")),
        );
        if let Some(away) = conn.irc.as_ref().and_then(|c| c.away()) {
            self.num("301", &[name.as_str()], Some(&away));
        }
        self.num("318", &[name.as_str()], Some("End of /WHOIS list"));
    }

    /// `USERHOST <nicks>`.
    fn userhost(&self, m: &Message<'_>) {
        let found: Vec<String> = m
            .params
            .iter()
            .take(5)
            .filter_map(|n| {
                let (name, conn) = self.hub.user(n)?;
                let member = self.find_member(&name, &conn)?;
                let who = member.who();
                let (user, host) = who.user_host();
                Some(format!("{name}=+{user}@{host}"))
            })
            .collect();
        self.num("302", &[], Some(&found.join(" ")));
    }

    /// `MODE <target> [<changes> <args>...]`.
    fn mode(&mut self, m: &Message<'_>) {
        let Some(target) = m.param(0) else {
            return self.num("461", &["MODE"], Some("Not enough parameters"));
        };
        if !target.starts_with('#') {
            return self.user_mode(target, m.param(1));
        }
        let Some(room) = self.hub.rooms.get(target) else {
            return self.num("403", &[target], Some("No such channel"));
        };
        let chan = room.name.as_str().to_owned();
        let Some(changes) = m.param(1) else {
            let st = room.read();
            let modes = st.modes.render(st.members.contains_key(&self.conn.id));
            let middle: Vec<&str> = std::iter::once(chan.as_str())
                .chain(modes.iter().map(String::as_str))
                .collect();
            self.num("324", &middle, None);
            let created = (st.created_ms / 1000).to_string();
            return self.num("329", &[&chan, &created], None);
        };
        // List queries (bans, exceptions, invites): nothing is ever on them.
        if matches!(changes, "b" | "+b" | "e" | "+e" | "I" | "+I") && m.param(2).is_none() {
            let (code, what) = match changes.trim_start_matches('+') {
                "b" => ("368", "End of channel ban list"),
                "e" => ("349", "End of channel exception list"),
                _ => ("347", "End of channel invite list"),
            };
            return self.num(code, &[&chan], Some(what));
        }
        let mut args = m.params.iter().skip(2).copied();
        let mut st = room.write();
        match st.members.get(&self.conn.id) {
            None => return self.num("442", &[&chan], Some("You're not on that channel")),
            Some(me) if !me.op => {
                return self.num("482", &[&chan], Some("You're not channel operator"))
            }
            Some(_) => {}
        }
        let mut applied: Vec<String> = Vec::new();
        let mut on = true;
        for c in changes.chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                'o' | 'v' => {
                    let Some(nick) = args.next() else { continue };
                    let member = st
                        .members
                        .values_mut()
                        .find(|m| m.nick.eq_ignore_ascii_case(nick));
                    let Some(member) = member else {
                        self.num("441", &[nick, &chan], Some("They aren't on that channel"));
                        continue;
                    };
                    if c == 'o' {
                        member.op = on;
                    } else {
                        member.voice = on;
                    }
                    let nick = member.nick.to_string();
                    applied.push(format!("{}{c}", sign(on)));
                    applied.push(nick);
                }
                't' => {
                    st.modes.topic_ops = on;
                    applied.push(format!("{}t", sign(on)));
                }
                'n' => {
                    st.modes.no_external = on;
                    applied.push(format!("{}n", sign(on)));
                }
                'k' if on => {
                    let Some(key) = args.next().filter(|k| valid_key(k)) else {
                        self.num("696", &[&chan, "k", "*"], Some("Invalid key"));
                        continue;
                    };
                    st.modes.key = Some(key.to_owned());
                    applied.push("+k".into());
                    applied.push(key.to_owned());
                }
                'k' => {
                    let _ = args.next();
                    st.modes.key = None;
                    applied.push("-k".into());
                    applied.push("*".into());
                }
                'l' if on => {
                    let Some(n) = args.next().and_then(|n| n.parse::<usize>().ok()) else {
                        self.num("696", &[&chan, "l", "*"], Some("Invalid limit"));
                        continue;
                    };
                    st.modes.limit = Some(n);
                    applied.push("+l".into());
                    applied.push(n.to_string());
                }
                'l' => {
                    st.modes.limit = None;
                    applied.push("-l".into());
                }
                other => {
                    let s = other.to_string();
                    self.num("472", &[&s], Some("is an unknown mode char to me"));
                }
            }
        }
        if applied.is_empty() {
            return;
        }
        // One MODE line: the flags together, then their arguments.
        let mut flags = String::new();
        let mut margs: Vec<&str> = Vec::new();
        let mut i = 0;
        let mut last_sign = None;
        while i < applied.len() {
            let (sign, flag) = applied[i].split_at(1);
            if last_sign != Some(sign) {
                flags.push_str(sign);
                last_sign = Some(sign);
            }
            flags.push_str(flag);
            let takes_arg = applied[i].ends_with(['o', 'v', 'k']) || applied[i] == "+l";
            if takes_arg && i + 1 < applied.len() {
                margs.push(&applied[i + 1]);
                i += 1;
            }
            i += 1;
        }
        let mut change: Vec<&str> = vec![&flags];
        change.extend(margs);
        let event = Event::Mode {
            by: self.who(),
            room: &chan,
            change: &change,
        };
        let fanned = fanout(&st, None, &event);
        drop(st);
        self.hub.add_fanned(fanned);
    }

    /// `MODE <nick> [+i|-i]`.
    fn user_mode(&mut self, target: &str, change: Option<&str>) {
        if !target.eq_ignore_ascii_case(self.me()) {
            return self.num("502", &[], Some("Can't change mode for other users"));
        }
        let me = self.me().to_owned();
        let Some(change) = change else {
            let modes = if self.invisible { "+i" } else { "+" };
            return self.num("221", &[modes], None);
        };
        let mut on = true;
        let mut applied = String::new();
        for c in change.chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                'i' => {
                    if self.invisible != on {
                        self.invisible = on;
                        applied.push_str(sign(on));
                        applied.push('i');
                    }
                }
                _ => self.num("501", &[], Some("Unknown MODE flag")),
            }
        }
        if !applied.is_empty() {
            let prefix = self.who().prefix();
            self.push(|out| put_line(out, None, &prefix, "MODE", &[&me], Some(&applied)));
        }
    }

    /// `KICK <chan> <nick> [:reason]`.
    fn kick(&mut self, m: &Message<'_>) {
        let (Some(chan), Some(nick)) = (m.param(0), m.param(1)) else {
            return self.num("461", &["KICK"], Some("Not enough parameters"));
        };
        let Some(room) = self.hub.rooms.get(chan) else {
            return self.num("403", &[chan], Some("No such channel"));
        };
        let reason = m
            .param(2)
            .map_or_else(|| self.me().to_owned(), |r| clean(r, TEXTLEN));
        let chan = room.name.as_str();
        match self.hub.rooms.kick(&room, self.conn.id, nick, &reason) {
            Ok(fanned) => self.hub.add_fanned(fanned),
            Err(RoomError::NotOperator) => {
                self.num("482", &[chan], Some("You're not channel operator"))
            }
            Err(RoomError::TheyAreNotIn) => {
                self.num("441", &[nick, chan], Some("They aren't on that channel"))
            }
            Err(_) => self.num("442", &[chan], Some("You're not on that channel")),
        }
    }

    /// `AWAY [:message]`.
    fn away(&mut self, m: &Message<'_>) {
        let message = m
            .param(0)
            .filter(|a| !a.is_empty())
            .map(|a| clean(a, TEXTLEN));
        if let Some(caps) = &self.conn.irc {
            caps.set_away(message.as_deref());
        }
        match message {
            Some(_) => self.num("306", &[], Some("You have been marked as being away")),
            None => self.num("305", &[], Some("You are no longer marked as being away")),
        }
    }

    /// The connection is over: frees the nick and tells those who share a room with it.
    fn close(&mut self, reason: &str) {
        let Some(name) = self.name() else {
            return;
        };
        self.registered = false;
        if self.hub.leave(&self.conn, &name) {
            let announce = self.hub.user_count() < self.hub.config.notice_limit;
            let rooms = std::mem::take(&mut self.rooms);
            let conn = self.conn.clone();
            let who = Who {
                nick: &self.nick_arc,
                userhost: conn.userhost(),
            };
            let fanned = self
                .hub
                .rooms
                .quit(&rooms, self.conn.id, who, reason, announce);
            self.hub.add_fanned(fanned);
        } else {
            // Taken back by a newer connection of the same account.
            let rooms = std::mem::take(&mut self.rooms);
            let fanned = self.hub.rooms.taken_back(&rooms, self.conn.id);
            self.hub.add_fanned(fanned);
        }
    }
}

/// `+` or `-`.
fn sign(on: bool) -> &'static str {
    if on {
        "+"
    } else {
        "-"
    }
}

/// A member's status prefixes: all of them with multi-prefix, else the highest.
fn prefixes(m: &Member, multi: bool) -> String {
    let mut s = String::new();
    if m.op {
        s.push('@');
    }
    if m.voice && (multi || !m.op) {
        s.push('+');
    }
    s
}

/// A channel key: one printable ASCII word without commas.
fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 32 && k.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// IRC text made printable: formatting codes and other control characters are dropped
/// (the chat port shows text as it is), and it is cut to `max` bytes on a character
/// boundary.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).collect();
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// The account name and password of a SASL `PLAIN` message (base64 of
/// `authzid NUL authcid NUL password`); `None` when it is malformed, names no valid account
/// name, or asks to act for someone else.
fn plain(base64: &str) -> Option<(Name<'static>, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return None;
    }
    let name = Name::new(authcid).ok()?.into_owned();
    Some((name, password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_keeps_text_printable() {
        assert_eq!(clean("\u{1}ACTION waves\u{1}", 100), "ACTION waves");
        assert_eq!(clean("\u{2}bold\u{2} \u{3}4red", 100), "bold 4red");
        assert_eq!(clean("ééé", 3), "é");
    }

    #[test]
    fn sasl_plain_messages() {
        // "\0alice\0correct horse battery"
        let (name, password) = plain("AGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==").unwrap();
        assert_eq!(
            (name.as_str(), password.as_str()),
            ("alice", "correct horse battery")
        );
        // "alice\0alice\0pw": an authzid that is the account itself is fine.
        assert!(plain("YWxpY2UAYWxpY2UAcHc=").is_some());
        // "bob\0alice\0pw": acting for someone else is not.
        assert!(plain("Ym9iAGFsaWNlAHB3").is_none());
        // "alice\0pw": no authzid field at all.
        assert!(plain("YWxpY2UAcHc=").is_none());
        assert!(plain("not base64").is_none());
        // "\0al ice\0pw": not a name.
        assert!(plain("AGFsIGljZQBwdw==").is_none());
    }
}
