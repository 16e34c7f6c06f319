//! Cluster mode: several `chat-server` nodes on one Redis (`--cluster redis://HOST:PORT`)
//! are one chat service. Names are unique across nodes and LIST shows them all; MSG,
//! BCST, rooms (notices and history) and `* MAIL` cross nodes; mail COMPOSEd on one node is
//! READ on another; an account made on one node is proven on another; the IRC door on one
//! node chats with the chat port on another. Under faults: fifty clients on three nodes race
//! for one name; a node killed with `kill -9` frees its users' names within the lease and
//! loses no acknowledged mail; Redis killed and restarted under traffic leaves local chat
//! working, never acknowledges mail it could not store, and heals without restarting a node;
//! a name taken on two nodes while Redis was down is settled, one holder let go, when it
//! returns.
//!
//! Each test starts its own Redis and nodes, so the tests run in parallel. What crosses
//! nodes may lag a moment: tests wait for it with a deadline (polling), never a fixed sleep.
//! Skipped, with a note, where `redis-server` is not installed (`scripts/test.sh` installs
//! it), and on Windows, where there is no `redis-server` to start.

#[cfg(unix)]
mod unix {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::{Duration, Instant};

    use chat_tests::{both_framings, other, Client, Framing, RecvError, Redis, Server};

    /// How long something that crosses nodes (a name in LIST, a node's link to Redis) may
    /// take to show.
    const LAG: Duration = Duration::from_secs(5);

    /// Pause between two attempts of a poll.
    const POLL: Duration = Duration::from_millis(50);

    /// The name lease the node-kill test runs with (`--cluster-lease`; 10 s by default).
    const LEASE: Duration = Duration::from_secs(3);

    /// How much longer than the lease a dead node's names may stay taken (the last renewal
    /// came up to a third of a lease before the kill, so this is slack for a busy machine).
    const LEASE_MARGIN: Duration = Duration::from_secs(2);

    /// How long the nodes may take to get back to a restarted Redis (their reconnection
    /// backoff grows to at most 5 s).
    const HEAL: Duration = Duration::from_secs(10);

    /// What a node logs once its link to Redis is up (`server/src/cluster/link.rs`).
    const LINKED: &str = "connected to the cluster's Redis";

    /// A Redis and the nodes that share it. Nodes are dropped (killed) before Redis.
    struct Cluster {
        /// The nodes, in the order they were given.
        nodes: Vec<Server>,
        /// The Redis they share.
        redis: Redis,
    }

    impl Cluster {
        /// Starts a Redis and one node per entry of `extra` (that node's extra arguments),
        /// each with its own data dir, and waits until every node is linked to Redis (see
        /// [`Cluster::await_fanout`] for what crosses nodes). `None` (the test is skipped)
        /// without `redis-server`.
        fn start(extra: &[&[&str]]) -> Option<Cluster> {
            let redis = Redis::start()?;
            let url = redis.url();
            let nodes: Vec<Server> = extra
                .iter()
                .map(|args| {
                    let mut all = vec!["--cluster", url.as_str()];
                    all.extend_from_slice(args);
                    Server::start(&all)
                })
                .collect();
            let cluster = Cluster { nodes, redis };
            cluster.wait_linked();
            Some(cluster)
        }

        /// `n` nodes with no extra arguments.
        fn plain(n: usize) -> Option<Cluster> {
            Cluster::start(&vec![&[][..]; n])
        }

        /// Waits until every node said it reached Redis.
        fn wait_linked(&self) {
            for (i, node) in self.nodes.iter().enumerate() {
                assert!(
                    node.wait_log(LINKED, LAG),
                    "node {i} did not log {LINKED:?} within {LAG:?}; it logged:\n{}",
                    node.logs().join("\n")
                );
            }
        }

        /// Waits until Redis has at least one subscribed connection per node (each node
        /// listens for what the others publish): before that, a message published to a node
        /// could be lost. Tests of anything that crosses nodes on pub/sub (messages,
        /// notices, room events) start with this.
        fn await_fanout(&self) {
            let want = self.nodes.len();
            eventually("every node subscribed on Redis", LAG, || {
                let clients = self
                    .redis
                    .query(&["CLIENT", "LIST"])
                    .map_err(|e| e.to_string())?;
                if subscribers(&clients) >= want {
                    Ok(())
                } else {
                    Err(clients)
                }
            });
        }

        /// A client of node `i`'s chat port.
        fn client(&self, i: usize, f: Framing) -> Client {
            self.nodes[i].client(f)
        }
    }

    /// How many connections in a `CLIENT LIST` answer are subscribed to a channel or pattern.
    fn subscribers(client_list: &str) -> usize {
        client_list
            .lines()
            .filter(|line| {
                line.split(' ').any(|field| {
                    ["sub=", "psub=", "ssub="].iter().any(|k| {
                        field
                            .strip_prefix(k)
                            .and_then(|n| n.parse::<u64>().ok())
                            .is_some_and(|n| n > 0)
                    })
                })
            })
            .count()
    }

    /// Tries `attempt` every [`POLL`] until it succeeds, and returns what it gave; fails the
    /// test with `what` and the last failure once `within` has passed.
    #[track_caller]
    fn eventually<T>(
        what: &str,
        within: Duration,
        attempt: impl FnMut() -> Result<T, String>,
    ) -> T {
        eventually_by(what, Instant::now() + within, attempt)
    }

    /// [`eventually`] with a deadline.
    #[track_caller]
    fn eventually_by<T>(
        what: &str,
        deadline: Instant,
        mut attempt: impl FnMut() -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            match attempt() {
                Ok(v) => return v,
                Err(last) if Instant::now() >= deadline => panic!(
                    "{what}: still not so after {:?}; last seen: {last}",
                    start.elapsed()
                ),
                Err(_) => thread::sleep(POLL),
            }
        }
    }

    /// The next message that is not a server notice (`* ...`) or a room's history.
    #[track_caller]
    fn reply(c: &mut Client) -> String {
        loop {
            let m = c.recv();
            if m.starts_with("* ") {
                continue;
            }
            if let Some(n) = history_len(&m) {
                for _ in 0..n {
                    c.recv();
                }
                continue;
            }
            return m;
        }
    }

    /// `n` for a `HISTORY <#room> <n>` message.
    fn history_len(m: &str) -> Option<usize> {
        m.strip_prefix("HISTORY #")
            .and_then(|r| r.split(' ').nth(1))
            .and_then(|n| n.parse().ok())
    }

    /// LIST on `c`: the names, as the server sent them (notices before the answer skipped).
    #[track_caller]
    fn list(c: &mut Client) -> Vec<String> {
        c.send("LIST");
        let head = reply(c);
        let n: usize = head
            .strip_prefix("USERS ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected USERS <n>, got {head:?}"));
        (0..n).map(|_| c.recv()).collect()
    }

    /// Polls LIST on `c` until it is exactly `names` (sorted as the server sorts them).
    #[track_caller]
    fn await_list(c: &mut Client, names: &[&str]) {
        eventually(&format!("LIST shows {names:?}"), LAG, || {
            let got = list(c);
            if got == names {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }

    /// Sends `command` (`JOIN <name>` or `LOGIN <name>`) on `c` again while it is answered
    /// `Name Taken: <name> is already in use` (the name's old holder, or its lease, is still
    /// there), until it is answered `ok` or `deadline` passes.
    #[track_caller]
    fn claim_by(c: &mut Client, command: &str, ok: &str, deadline: Instant) {
        let name = command.split(' ').nth(1).unwrap_or_default();
        let taken = format!("Name Taken: {name} is already in use");
        eventually_by(&format!("{command} is answered {ok:?}"), deadline, || {
            c.send(command);
            let got = reply(c);
            if got == ok {
                return Ok(());
            }
            assert_eq!(got, taken, "{command} while the name is still held");
            Err(got)
        });
    }

    /// A new line client of the chat port at `addr` that took `name` before `deadline`.
    #[track_caller]
    fn take_name_by(addr: SocketAddr, name: &str, deadline: Instant) -> Client {
        let mut c = Client::line(addr);
        claim_by(
            &mut c,
            &format!("JOIN {name}"),
            &format!("HELLO {name}"),
            deadline,
        );
        c
    }

    /// Sends `MSG <to_name> ...` from `from` (named `from_name`) until `to` receives one
    /// (within a second of the send), for at most `within`: for after a failure, while the
    /// nodes may still route to where the recipient was. A send answered with a refusal
    /// (`Unknown Recipient`) is tried again; so is one that was silently lost.
    #[track_caller]
    fn await_delivery(
        from: &mut Client,
        from_name: &str,
        to: &mut Client,
        to_name: &str,
        within: Duration,
    ) {
        let mut n = 0;
        eventually(
            &format!("a MSG from {from_name} reaches {to_name}"),
            within,
            || {
                n += 1;
                from.send(&format!("MSG {to_name} are you there ({n})?"));
                from.send("PING");
                let answer = reply(from);
                if answer != "PONG" {
                    from.expect("PONG");
                    return Err(answer);
                }
                let want = format!("{from_name} SENT are you there ({n})?");
                let until = Instant::now() + Duration::from_secs(1);
                while let Some(m) = to.try_recv(until.saturating_duration_since(Instant::now())) {
                    if m == want {
                        return Ok(());
                    }
                }
                Err(format!("{to_name} did not receive {want:?}"))
            },
        );
    }

    /// The harness's Redis keeps what it acknowledged through a `kill -9` and a clean stop,
    /// restarting on the same port: what the outage test relies on.
    #[test]
    fn test_redis_keeps_what_it_acknowledged_across_restarts() {
        let Some(mut redis) = Redis::start() else {
            return;
        };
        let port = redis.addr().port();
        assert_eq!(redis.query(&["SET", "chat:probe", "kept"]).unwrap(), "+OK");
        redis.kill9();
        assert!(!redis.is_running());
        assert!(redis.query(&["PING"]).is_err(), "a killed Redis answered");
        redis.restart();
        assert_eq!(redis.addr().port(), port);
        assert_eq!(redis.query(&["GET", "chat:probe"]).unwrap(), "kept");
        redis.stop();
        redis.restart();
        assert_eq!(redis.query(&["GET", "chat:probe"]).unwrap(), "kept");
        assert_eq!(redis.query(&["GET", "chat:none"]).unwrap(), "$-1");
    }

    both_framings!(
        names_are_one_across_nodes,
        direct_messages_cross_nodes,
        broadcasts_reach_every_node,
        rooms_span_nodes,
        mail_composed_on_one_node_is_read_on_another,
    );

    /// `c` takes `name`, then waits until LIST on its node shows `everyone` (sorted): from
    /// then on its node knows them all, so messages to them are routed, and a join notice of
    /// someone who was there first that was still on its way (pub/sub lags a moment) has
    /// come, and was skipped, before LIST's answer.
    #[track_caller]
    fn join_seeing(c: &mut Client, name: &str, everyone: &[&str]) {
        c.join(name);
        await_list(c, everyone);
    }

    /// The four people `who` (node, name, framing) join in turn, each once its node lists
    /// everyone before it; everyone already in hears each join.
    fn gather(c: &Cluster, who: [(usize, &str, Framing); 4]) -> [Client; 4] {
        let mut people: Vec<Client> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (node, name, f) in who {
            let mut x = c.client(node, f);
            names.push(name);
            join_seeing(&mut x, name, &names);
            for p in &mut people {
                p.expect(&format!("* {name} joined"));
            }
            people.push(x);
        }
        people.try_into().unwrap_or_else(|_| panic!("four people"))
    }

    /// JOIN on A, LIST on B shows it; the name is taken on B too, in any case; QUIT frees it
    /// everywhere.
    fn names_are_one_across_nodes(f: Framing) {
        let Some(c) = Cluster::plain(2) else { return };
        c.await_fanout();
        let mut ann = c.client(0, f);
        ann.join("ann");
        let mut dup = c.client(1, other(f));
        dup.send("JOIN ANN");
        dup.expect("Name Taken: ANN is already in use");
        let mut bob = c.client(1, other(f));
        join_seeing(&mut bob, "bob", &["ann", "bob"]);
        ann.expect("* bob joined");
        await_list(&mut ann, &["ann", "bob"]);
        ann.quit();
        bob.expect("* ann left");
        await_list(&mut bob, &["bob"]);
        // The refused connection may now take it.
        claim_by(&mut dup, "JOIN Ann", "HELLO Ann", Instant::now() + LAG);
        bob.expect("* Ann joined");
    }

    /// MSG from A reaches bob on B and back, in either framing; unknown recipients are still
    /// refused, also one who just left another node.
    fn direct_messages_cross_nodes(f: Framing) {
        let Some(c) = Cluster::plain(2) else { return };
        c.await_fanout();
        let mut ann = c.client(0, f);
        ann.join("ann");
        let mut bob = c.client(1, other(f));
        join_seeing(&mut bob, "bob", &["ann", "bob"]);
        ann.expect("* bob joined");
        ann.send("MSG BOB hello from A * QUIT");
        bob.expect("ann SENT hello from A * QUIT");
        bob.send("MESG ann hello from B");
        ann.expect("bob SENT hello from B");
        ann.send("MSG nobody are you there?");
        ann.expect("Unknown Recipient");
        ann.send("MSG ann note to self");
        ann.expect("ann SENT note to self");
        // A burst arrives whole and in order.
        for i in 0..50 {
            ann.send(&format!("MSG bob burst {i}"));
        }
        for i in 0..50 {
            bob.expect(&format!("ann SENT burst {i}"));
        }
        bob.quit();
        ann.expect("* bob left");
        // The notice came: A knows bob is gone, and says so rather than drop the message.
        ann.send("MSG bob gone?");
        ann.expect("Unknown Recipient");
        ann.expect_nothing_pending();
    }

    /// BCST on one node is heard by everyone else on every node, and by nobody twice.
    fn broadcasts_reach_every_node(f: Framing) {
        let Some(c) = Cluster::plain(3) else { return };
        c.await_fanout();
        let [mut ann, mut bob, mut cat, mut dan] = gather(
            &c,
            [
                (0, "ann", f),
                (1, "bob", other(f)),
                (2, "cat", f),
                (0, "dan", other(f)),
            ],
        );
        ann.send("BCST hello everyone");
        for x in [&mut bob, &mut cat, &mut dan] {
            x.expect("ann BCST hello everyone");
        }
        cat.send("SAY #lobby and from C");
        for x in [&mut ann, &mut bob, &mut dan] {
            x.expect("cat BCST and from C");
        }
        for x in [&mut ann, &mut bob, &mut cat, &mut dan] {
            x.expect_nothing_pending();
        }
    }

    /// ENTER on two nodes; SAY reaches the members on the other node and nobody outside;
    /// entering, leaving and the history (shown on a third node, where nobody was in the
    /// room) cross nodes too.
    fn rooms_span_nodes(f: Framing) {
        let Some(c) = Cluster::plain(3) else { return };
        c.await_fanout();
        let [mut ann, mut bob, mut cat, mut eve] = gather(
            &c,
            [
                (0, "ann", f),
                (1, "bob", other(f)),
                (1, "cat", f),
                (2, "eve", other(f)),
            ],
        );

        ann.send("ENTER #dev");
        ann.expect("ENTERED #dev");
        // Heard after the ENTER it follows, on every node.
        ann.send("BCST come to #dev, bob");
        for x in [&mut bob, &mut cat, &mut eve] {
            x.expect("ann BCST come to #dev, bob");
        }
        bob.send("ENTER #Dev");
        bob.expect("ENTERED #dev");
        ann.expect("* bob entered #dev");
        bob.send("SAY #dev hello from B");
        ann.expect("bob SAY #dev hello from B");
        ann.send("SAY #DEV hello from A");
        bob.expect("ann SAY #dev hello from A");
        ann.send("BCST and you, eve");
        for x in [&mut bob, &mut cat, &mut eve] {
            x.expect("ann BCST and you, eve");
        }
        cat.expect_nothing_pending();

        // Eve, on a node where nobody is in #dev, is shown what was said there.
        eve.send("ENTER #dev");
        eve.expect_lines(&["ENTERED #dev", "HISTORY #dev 2"]);
        let first = eve.expect_prefix("20");
        let second = eve.expect_prefix("20");
        assert!(
            first.ends_with("Z bob hello from B") && second.ends_with("Z ann hello from A"),
            "history: {first:?}, {second:?}"
        );
        ann.expect("* eve entered #dev");
        bob.expect("* eve entered #dev");
        eve.send("SAY #dev hi all");
        ann.expect("eve SAY #dev hi all");
        bob.expect("eve SAY #dev hi all");

        bob.send("PART #dev");
        bob.expect("PARTED #dev");
        ann.expect("* bob left #dev");
        eve.expect("* bob left #dev");
        ann.send("SAY #dev bob is gone");
        eve.expect("ann SAY #dev bob is gone");
        bob.send("SAY #dev still here?");
        bob.expect("Not In Room: #dev");
        bob.quit();
        for x in [&mut ann, &mut cat, &mut eve] {
            x.expect("* bob left");
        }
        for x in [&mut ann, &mut cat, &mut eve] {
            x.expect_nothing_pending();
        }
    }

    /// COMPOSE on A (chat port and strict door), LOGIN and READ on B: the mailbox is one.
    fn mail_composed_on_one_node_is_read_on_another(f: Framing) {
        let Some(c) = Cluster::start(&[&["--mailbox-port", "0"], &[]]) else {
            return;
        };
        let mut ann = c.client(0, f);
        ann.join("ann");
        ann.send("COMPOSE bob");
        ann.send("hi bob, from A");
        ann.expect("MESSAGE SENT");
        let mut door = c.nodes[0].mailbox();
        door.send("LOGIN carl");
        door.expect("0");
        door.send("COMPOSE bob");
        door.send("from the strict door");
        door.expect("MESSAGE SENT");
        door.send("EXIT");
        door.expect_closed_silently();

        let mut bob = c.client(1, other(f));
        bob.send("LOGIN bob");
        bob.expect("2");
        bob.send("READ");
        bob.expect_lines(&["FROM ann", "TEXT hi bob, from A"]);
        bob.send("READ");
        bob.expect_lines(&["FROM carl", "TEXT from the strict door"]);
        bob.send("ACK");
        bob.expect("ACKED");
        bob.send("READ");
        bob.expect("READ ERROR");
        // Read and acknowledged on B means gone on A too.
        bob.quit();
        let mut again = c.client(0, f);
        claim_by(&mut again, "LOGIN bob", "0", Instant::now() + LAG);
        again.send("READ");
        again.expect("READ ERROR");
    }

    /// `* MAIL <sender>` reaches the recipient on whichever node holds their name.
    #[test]
    fn mail_notice_reaches_the_recipient_on_another_node() {
        let Some(c) = Cluster::plain(2) else { return };
        c.await_fanout();
        let mut bob = c.client(1, Framing::Line);
        bob.join("bob");
        let mut ann = c.client(0, Framing::Framed);
        join_seeing(&mut ann, "ann", &["ann", "bob"]);
        bob.expect("* ann joined");
        ann.send("COMPOSE bob");
        ann.send("are you there?");
        ann.expect("MESSAGE SENT");
        bob.expect("* MAIL ann");
        bob.send("READ");
        bob.expect_lines(&["FROM ann", "TEXT are you there?"]);
    }

    /// Fifty clients spread over three nodes send `JOIN` of one name (in three spellings) at
    /// once: exactly one gets HELLO, every other one `Name Taken`, and LIST agrees.
    #[test]
    fn fifty_clients_on_three_nodes_race_for_one_name() {
        let room: &[&str] = &["--max-users", "100"];
        let Some(c) = Cluster::start(&[room; 3]) else {
            return;
        };
        const N: usize = 50;
        let barrier = Arc::new(Barrier::new(N));
        let racers: Vec<_> = (0..N)
            .map(|i| {
                let framing = if i % 2 == 0 {
                    Framing::Line
                } else {
                    Framing::Framed
                };
                let mut client = c.client(i % 3, framing);
                let name = ["racer", "Racer", "RACER"][i % 3];
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    client.send(&format!("JOIN {name}"));
                    let answer = client.recv();
                    (name, answer, client)
                })
            })
            .collect();
        let mut results: Vec<(&str, String, Client)> = racers
            .into_iter()
            .map(|h| h.join().expect("a racer's thread"))
            .collect();
        let answers: Vec<&str> = results.iter().map(|(_, a, _)| a.as_str()).collect();
        for (name, answer, _) in &results {
            assert!(
                *answer == format!("HELLO {name}")
                    || *answer == format!("Name Taken: {name} is already in use"),
                "JOIN {name} answered {answer:?}; all answers: {answers:?}"
            );
        }
        let hellos = answers.iter().filter(|a| a.starts_with("HELLO ")).count();
        assert_eq!(hellos, 1, "HELLO count; answers: {answers:?}");
        let (winner, _, holder) = results
            .iter_mut()
            .find(|(_, answer, _)| answer.starts_with("HELLO "))
            .expect("the winner");
        let winner = *winner;
        await_list(holder, &[winner]);
        for i in 0..3 {
            let mut late = c.client(i, Framing::Line);
            late.send("JOIN racer");
            late.expect("Name Taken: racer is already in use");
        }
    }

    /// `kill -9` of a node: its users' names are free on the other nodes within the lease
    /// (`--cluster-lease 3` here, to keep the test short), LIST forgets them, and the mail
    /// its users COMPOSEd (acknowledged) before is READ later.
    #[test]
    fn killed_nodes_names_free_within_the_lease_and_its_mail_stays() {
        let lease: &[&str] = &["--cluster-lease", &LEASE.as_secs().to_string()];
        let Some(mut c) = Cluster::start(&[lease; 3]) else {
            return;
        };
        c.await_fanout();
        let mut ann = c.client(0, Framing::Line);
        ann.join("ann");
        let mut carl = c.client(2, Framing::Framed);
        join_seeing(&mut carl, "carl", &["ann", "carl"]);
        ann.expect("* carl joined");
        let mut dora = c.client(2, Framing::Line);
        dora.join("dora");
        ann.expect("* dora joined");
        carl.expect("* dora joined");
        carl.send("COMPOSE ann");
        carl.send("sent before the crash");
        carl.expect("MESSAGE SENT");
        let mut probe = c.client(1, Framing::Line);
        probe.send("JOIN carl");
        probe.expect("Name Taken: carl is already in use");

        c.nodes[2].kill9();
        let killed = Instant::now();
        let deadline = killed + LEASE + LEASE_MARGIN;
        let mut carl = take_name_by(c.nodes[1].addr, "carl", deadline);
        let mut dora = take_name_by(c.nodes[0].addr, "dora", deadline);
        eprintln!(
            "the killed node's names were free after {:?} (lease {LEASE:?})",
            killed.elapsed()
        );
        await_list(&mut ann, &["ann", "carl", "dora"]);
        ann.send("READ");
        assert_eq!(reply(&mut ann), "FROM carl");
        ann.expect("TEXT sent before the crash");
        ann.send("ACK");
        assert_eq!(reply(&mut ann), "ACKED");
        // The new holders are reachable where they are now.
        await_delivery(&mut ann, "ann", &mut carl, "carl", LAG);
        await_delivery(&mut dora, "dora", &mut ann, "ann", LAG);
    }

    /// Redis killed and restarted while two clients chat on one node: their chat never
    /// stops; while Redis is down COMPOSE is refused (`MESSAGE FAILED`, never `MESSAGE SENT`),
    /// READ says why it cannot (not that the mailbox is empty) and a MSG to another node is refused (`Unknown
    /// Recipient`), not dropped; once it is back the service heals without restarting a
    /// node (COMPOSE, cross-node MSG and BCST, LIST), and no acknowledged mail is lost.
    #[test]
    fn redis_outage_keeps_local_chat_and_heals() {
        let Some(mut c) = Cluster::plain(2) else {
            return;
        };
        c.await_fanout();
        let mut ann = c.client(0, Framing::Line);
        ann.join("ann");
        let mut cat = c.client(0, Framing::Framed);
        cat.join("cat");
        ann.expect("* cat joined");
        let mut bob = c.client(1, Framing::Line);
        bob.join("bob");
        ann.expect("* bob joined");
        cat.expect("* bob joined");
        ann.send("COMPOSE bob");
        ann.send("before the outage");
        ann.expect("MESSAGE SENT");

        // Traffic on node A that needs no Redis, through the outage and the healing.
        let mut talker = c.client(0, Framing::Line);
        talker.join("talker");
        let mut hearer = c.client(0, Framing::Framed);
        hearer.join("hearer");
        let stop = Arc::new(AtomicBool::new(false));
        let traffic = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    talker.send(&format!("MSG hearer tick {n}"));
                    // Hearer is in the lobby too: what is said there may come in between.
                    let want = format!("talker SENT tick {n}");
                    loop {
                        let got = hearer.recv();
                        if got == want {
                            break;
                        }
                        assert!(
                            got.starts_with("* ") || got.contains(" BCST "),
                            "expected {want:?}, got {got:?}"
                        );
                    }
                    n += 1;
                    // Paced well under the flood limit (100 commands/s).
                    thread::sleep(Duration::from_millis(20));
                }
                n
            })
        };

        c.redis.kill9();
        ann.send("COMPOSE bob");
        ann.send("during the outage");
        assert_eq!(
            reply(&mut ann),
            "MESSAGE FAILED",
            "COMPOSE while Redis was down"
        );
        bob.send("READ");
        let read = reply(&mut bob);
        // Not `READ ERROR`: bob's mailbox holds one message, which cannot be read now.
        assert!(
            read.starts_with("Server Error: the mailbox could not be read: temporarily")
                && read.ends_with("try again later"),
            "READ while Redis was down: {read:?}"
        );
        // A's link has seen Redis fail: a message for bob on B is refused, not dropped.
        ann.send("MSG bob can you hear me?");
        assert_eq!(reply(&mut ann), "Unknown Recipient");
        // Local chat on a node goes on.
        ann.send("BCST local chat still works");
        assert_eq!(reply(&mut cat), "ann BCST local chat still works");
        ann.send("MSG cat and direct messages");
        assert_eq!(reply(&mut cat), "ann SENT and direct messages");

        c.redis.restart();
        let mut attempt = 0;
        let sent = eventually("COMPOSE works again after Redis restarted", HEAL, || {
            attempt += 1;
            let text = format!("after the outage ({attempt})");
            ann.send("COMPOSE bob");
            ann.send(&text);
            match reply(&mut ann) {
                ok if ok == "MESSAGE SENT" => Ok(text),
                other => Err(other),
            }
        });
        await_delivery(&mut ann, "ann", &mut bob, "bob", HEAL);
        bob.send("BCST and broadcasts");
        ann.expect_after_notices("bob BCST and broadcasts");
        await_list(&mut bob, &["ann", "bob", "cat", "hearer", "talker"]);

        stop.store(true, Ordering::Relaxed);
        let ticks = traffic
            .join()
            .expect("the chat on node A went on through the outage");
        assert!(ticks > 0, "no traffic went through");
        bob.send("READ");
        assert_eq!(reply(&mut bob), "FROM ann");
        bob.expect("TEXT before the outage");
        bob.send("READ");
        assert_eq!(reply(&mut bob), "FROM ann");
        bob.expect(&format!("TEXT {sent}"));
        bob.send("READ");
        assert_eq!(reply(&mut bob), "READ ERROR");
    }

    /// While Redis is down, each node lets a name be taken that no node it knows of holds:
    /// `zed` on A and `Zed` on B both get HELLO. When Redis is back the names are settled
    /// without restarting a node: exactly one of the two keeps it, the other is told why and
    /// disconnected, and LIST agrees everywhere.
    #[test]
    fn a_name_taken_on_two_nodes_while_redis_is_down_is_settled_when_it_returns() {
        let Some(mut c) = Cluster::plain(2) else {
            return;
        };
        c.await_fanout();
        c.redis.kill9();
        let mut a = c.client(0, Framing::Line);
        a.join("zed");
        let mut b = c.client(1, Framing::Framed);
        b.join("Zed");
        c.redis.restart();

        let lost = "* ERROR your name was taken on another server while this one was cut off";
        let mut seen: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        let loser = eventually("one of the two holders is let go", HEAL, || {
            for (i, x) in [&mut a, &mut b].into_iter().enumerate() {
                match x.next_message(POLL) {
                    Ok(m) => seen[i].push(m),
                    Err(RecvError::Closed) if seen[i].iter().any(|m| m == lost) => {
                        return Ok(i);
                    }
                    Err(RecvError::Closed) => {
                        return Err(format!("holder {i} closed after {:?}", seen[i]))
                    }
                    Err(_) => {}
                }
            }
            Err(format!("{seen:?}"))
        });
        let (mut kept, kept_name) = if loser == 0 { (b, "Zed") } else { (a, "zed") };
        kept.send("PING");
        assert_eq!(
            reply(&mut kept),
            "PONG",
            "the other holder keeps its connection"
        );
        for node in 0..2 {
            let mut look = c.client(node, Framing::Line);
            let name = format!("look{node}");
            look.join(&name);
            let mut everyone = [kept_name, name.as_str()];
            everyone.sort();
            await_list(&mut look, &everyone);
        }
    }

    /// An account made on A is proven on B: a plain JOIN of it is refused there, AUTH over
    /// TLS takes it, SIGNUP of it again is refused, and a wrong password fails.
    #[test]
    fn account_made_on_one_node_is_proven_on_another() {
        let Some(c) = Cluster::plain(2) else { return };
        let mut made = c.nodes[0].tls(Framing::Line);
        made.send("SIGNUP ann correct horse battery");
        made.expect("HELLO ann");
        let mut plain = c.client(1, Framing::Framed);
        plain.send("JOIN ann");
        plain.expect("Password Required: ann has an account; send AUTH ann <password>");
        made.quit();
        let mut again = c.nodes[1].tls(Framing::Framed);
        again.send("SIGNUP ANN another password");
        again.expect_prefix("Account Exists: ");
        again.send("AUTH ann wrong password");
        again.expect("Auth Failed");
        let mut proven = c.nodes[1].tls(Framing::Line);
        proven.send("AUTH ann correct horse battery");
        proven.expect("HELLO ann");
    }

    /// A newer AUTH on B takes the name back from an older connection on A, which is told
    /// why and closed; as on one server, nobody is told the name left (it did not), and the
    /// other nodes reach the name where it is now.
    #[test]
    fn auth_takes_a_name_back_across_nodes() {
        let Some(c) = Cluster::plain(3) else { return };
        c.await_fanout();
        let mut old = c.nodes[0].tls(Framing::Line);
        old.send("SIGNUP ann correct horse battery");
        old.expect("HELLO ann");
        let mut new = c.nodes[1].tls(Framing::Framed);
        new.send("AUTH ann correct horse battery");
        new.expect("HELLO ann");
        assert_eq!(
            old.expect_closed(),
            ["* ERROR your name was taken back by a newer AUTH"]
        );
        let mut bob = c.client(2, Framing::Line);
        join_seeing(&mut bob, "bob", &["ann", "bob"]);
        new.expect("* bob joined");
        await_delivery(&mut bob, "bob", &mut new, "ann", LAG);
        await_list(&mut bob, &["ann", "bob"]);
        new.expect_nothing_pending();
    }

    /// The IRC door on node A and the chat port on node B: one name space, the lobby,
    /// private messages both ways, a room, and the IRC refusals.
    #[test]
    fn irc_door_on_one_node_chats_with_the_chat_port_on_another() {
        let Some(c) = Cluster::start(&[&["--irc-port", "0"], &[]]) else {
            return;
        };
        c.await_fanout();
        let mut bob = c.client(1, Framing::Framed);
        bob.join("bob");
        let mut ivy = c.nodes[0].irc();
        ivy.send("NICK BOB");
        ivy.send("USER ivy 0 * :Ivy the tester");
        ivy.expect(":chat-server 433 * BOB :Nickname is already in use");
        ivy.send("NICK ivy");
        ivy.until(" 366 ivy #lobby ");
        bob.expect("* ivy joined");

        bob.send("BCST hello irc");
        let line = ivy.until(" PRIVMSG #lobby :hello irc");
        assert!(line.starts_with(":bob!"), "{line}");
        ivy.send("PRIVMSG #lobby :hello native");
        bob.expect("ivy BCST hello native");
        ivy.send("PRIVMSG Bob :psst");
        bob.expect("ivy SENT psst");
        bob.send("MSG IVY psst back");
        let line = ivy.until(" PRIVMSG ivy :psst back");
        assert!(line.starts_with(":bob!"), "{line}");
        ivy.send("PRIVMSG nobody :hello?");
        ivy.expect(":chat-server 401 ivy nobody :No such nick/channel");
        // WHOIS of a user on the other node: the name, and that it is elsewhere.
        ivy.send("WHOIS bob");
        ivy.expect(":chat-server 311 ivy bob bob chat * :bob");
        let line = ivy.until(" 312 ivy bob chat-server :");
        assert!(line.contains("another server of the cluster"), "{line}");
        ivy.expect(":chat-server 318 ivy bob :End of /WHOIS list");

        bob.send("ENTER #dev");
        bob.expect("ENTERED #dev");
        ivy.send("JOIN #dev");
        ivy.until(" 366 ivy #dev ");
        bob.expect("* ivy entered #dev");
        ivy.send("PRIVMSG #dev :in dev");
        bob.expect("ivy SAY #dev in dev");
        bob.send("SAY #dev back in dev");
        let line = ivy.until(" PRIVMSG #dev :back in dev");
        assert!(line.starts_with(":bob!"), "{line}");
    }
}

/// On Windows there is no `redis-server` to start: say so rather than pass silently.
#[cfg(not(unix))]
#[test]
fn cluster_tests_run_on_unix_only() {
    eprintln!("note: skipping: the cluster tests start redis-server, which runs on Unix only");
}
