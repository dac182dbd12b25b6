//! Who gets served when the server is full: the connections (`--web.max-connections`) and the
//! request slots (`--web.max-requests`) in one table, so that a client that stops reading or
//! never sends a request cannot lock a scraper out.
//!
//! - A new connection at the limit closes the oldest connection with no request in flight,
//!   one that never sent a byte first; a connection with bytes waiting to be read (a request
//!   not read yet) has spoken, so a scraper's new connection is not closed before its request
//!   is read however fast a flood of silent ones cycles through the table.
//! - A new request with every slot taken takes the slot of the response that has made no
//!   progress the longest, if that is over [`STALLED`]; its connection is closed. Only a
//!   request whose connection holds no slot may do so (a scraper asks one request at a time):
//!   an HTTP/2 attacker reconnecting with four streams takes the free slots, not four more,
//!   so closing one of its connections does not set off a chain of closings that would leave
//!   every slot fresh.
//! - A response that makes no progress for `--web.write-timeout` loses its slot and its
//!   connection ([`Admission::sweep`]).
//! - One connection holds at most [`PER_CONNECTION`] slots.
//!
//! Pure bookkeeping over explicit instants (the tests pass their own clock); the server closes
//! a connection when its [`CancellationToken`] fires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// A response with no progress for this long gives its slot to a new request when every slot
/// is taken: a reader that keeps up pulls a piece well within it.
pub const STALLED: Duration = Duration::from_secs(1);

/// Slots one connection may hold at once; also the `SETTINGS_MAX_CONCURRENT_STREAMS` of an
/// HTTP/2 connection. Ten connections are needed to fill the default 40 slots, and none of
/// them can keep a stalled slot from a newcomer.
pub const PER_CONNECTION: usize = 4;

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is held by a response that made progress within [`STALLED`].
    Full,
    /// Its connection already holds [`PER_CONNECTION`] slots.
    Connection,
}

/// Why a connection was closed by the server to free room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Idle, the oldest, closed to admit a new connection.
    Idle,
    /// Its response had stalled for over [`STALLED`] and a new request needed the slot.
    Stalled,
    /// Its response made no progress for `--web.write-timeout`.
    WriteTimeout,
}

struct Connection {
    accepted: Instant,
    in_flight: usize,
    /// The client has sent bytes (a TLS handshake, a request).
    spoke: bool,
    /// Whether bytes are waiting to be read, asked before the connection is closed as silent.
    waiting: Option<Box<dyn Fn() -> bool + Send>>,
    close: CancellationToken,
}

struct Slot {
    connection: u64,
    /// When the response last made progress (handed a piece to the connection).
    progress: Instant,
    /// The handler is still making the response (a reload): no body to stall yet.
    working: bool,
}

#[derive(Default)]
struct Table {
    next: u64,
    connections: HashMap<u64, Connection>,
    slots: HashMap<u64, Slot>,
    /// Connections the server closed to free room, by reason (what the tests count).
    closed: [u64; 3],
}

impl Table {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Closes connection `id` and frees its slots.
    fn close(&mut self, id: u64, why: Closed) {
        if let Some(c) = self.connections.remove(&id) {
            c.close.cancel();
        }
        self.slots.retain(|_, s| s.connection != id);
        if let Some(n) = self.closed.get_mut(why as usize) {
            *n += 1;
        }
    }
}

/// The connection and request table of one server.
pub struct Admission {
    max_connections: usize,
    /// 0: no limit (slots are still tracked, for the write timeout).
    max_requests: usize,
    table: Mutex<Table>,
}

impl Admission {
    pub fn new(max_connections: usize, max_requests: usize) -> Arc<Self> {
        Arc::new(Admission {
            max_connections: max_connections.max(1),
            max_requests,
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection, closing the oldest idle one if the limit is reached; `None`
    /// when every connection has a request in flight. The second value: an idle connection
    /// was closed for it.
    pub fn connect(self: &Arc<Self>, now: Instant) -> Option<(ConnectionTicket, bool)> {
        let mut table = self.table();
        let mut evicted = false;
        if table.connections.len() >= self.max_connections {
            let mut idle: Vec<(bool, Instant, u64)> = table
                .connections
                .iter()
                .filter(|(_, c)| c.in_flight == 0)
                .map(|(id, c)| (c.spoke, c.accepted, *id))
                .collect();
            idle.sort_unstable();
            let mut victim = None;
            for (spoke, _, id) in idle {
                let waiting = !spoke
                    && table
                        .connections
                        .get(&id)
                        .and_then(|c| c.waiting.as_ref())
                        .is_some_and(|waiting| waiting());
                if waiting {
                    if let Some(c) = table.connections.get_mut(&id) {
                        c.spoke = true;
                    }
                    continue;
                }
                victim = Some(id);
                break;
            }
            // Every idle one had bytes waiting: the oldest of them.
            let victim = victim.or_else(|| {
                table
                    .connections
                    .iter()
                    .filter(|(_, c)| c.in_flight == 0)
                    .min_by_key(|(id, c)| (c.accepted, **id))
                    .map(|(id, _)| *id)
            })?;
            table.close(victim, Closed::Idle);
            evicted = true;
        }
        let id = table.id();
        let close = CancellationToken::new();
        table.connections.insert(
            id,
            Connection {
                accepted: now,
                in_flight: 0,
                spoke: false,
                waiting: None,
                close: close.clone(),
            },
        );
        Some((
            ConnectionTicket {
                admission: self.clone(),
                id,
                close,
            },
            evicted,
        ))
    }

    /// Takes a request slot for `connection`: a free one, else, if `connection` holds none,
    /// the slot of the response that has stalled the longest (over [`STALLED`]), whose
    /// connection is closed (then the second value is true).
    pub fn slot(
        self: &Arc<Self>,
        connection: u64,
        now: Instant,
    ) -> Result<(SlotTicket, bool), Refused> {
        let mut table = self.table();
        let held = table
            .slots
            .values()
            .filter(|s| s.connection == connection)
            .count();
        if held >= PER_CONNECTION {
            return Err(Refused::Connection);
        }
        let mut evicted = false;
        if self.max_requests > 0 && table.slots.len() >= self.max_requests {
            if held > 0 {
                return Err(Refused::Full);
            }
            let stalled = table
                .slots
                .values()
                .filter(|s| !s.working && now.saturating_duration_since(s.progress) > STALLED)
                .min_by_key(|s| s.progress)
                .map(|s| s.connection)
                .ok_or(Refused::Full)?;
            table.close(stalled, Closed::Stalled);
            evicted = true;
            if stalled == connection {
                // Its own connection is gone: the request goes with it.
                return Err(Refused::Connection);
            }
        }
        let id = table.id();
        table.slots.insert(
            id,
            Slot {
                connection,
                progress: now,
                working: true,
            },
        );
        Ok((
            SlotTicket {
                admission: self.clone(),
                id,
            },
            evicted,
        ))
    }

    /// Closes the connections whose response made no progress for `timeout`; how many.
    pub fn sweep(&self, now: Instant, timeout: Duration) -> usize {
        let mut table = self.table();
        let mut late: Vec<u64> = table
            .slots
            .values()
            .filter(|s| !s.working && now.saturating_duration_since(s.progress) >= timeout)
            .map(|s| s.connection)
            .collect();
        late.sort_unstable();
        late.dedup();
        for id in &late {
            table.close(*id, Closed::WriteTimeout);
        }
        late.len()
    }

    /// Connections open, slots taken.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let table = self.table();
        (table.connections.len(), table.slots.len())
    }

    /// Connections closed to free room so far, for `why`.
    pub fn closed(&self, why: Closed) -> u64 {
        self.table().closed.get(why as usize).copied().unwrap_or(0)
    }
}

/// A connection's place in the table, given back when dropped.
pub struct ConnectionTicket {
    admission: Arc<Admission>,
    id: u64,
    close: CancellationToken,
}

impl ConnectionTicket {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Fires when the server closes this connection to free room.
    pub fn closed(&self) -> CancellationToken {
        self.close.clone()
    }

    /// Marks that the client has sent bytes: the connection is closed to admit another only
    /// after every silent one.
    pub fn spoke(&self) {
        if let Some(c) = self.admission.table().connections.get_mut(&self.id) {
            c.spoke = true;
        }
    }

    /// Tells how to know whether bytes wait to be read on this connection.
    pub fn waiting(&self, waiting: impl Fn() -> bool + Send + 'static) {
        if let Some(c) = self.admission.table().connections.get_mut(&self.id) {
            c.waiting = Some(Box::new(waiting));
        }
    }

    /// Marks a request in flight on this connection until the guard drops.
    pub fn request(&self) -> InFlight {
        if let Some(c) = self.admission.table().connections.get_mut(&self.id) {
            c.in_flight += 1;
        }
        InFlight {
            admission: self.admission.clone(),
            connection: self.id,
        }
    }
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        let mut table = self.admission.table();
        table.connections.remove(&self.id);
        let id = self.id;
        table.slots.retain(|_, s| s.connection != id);
    }
}

/// A request in flight on a connection (which is then not idle).
pub struct InFlight {
    admission: Arc<Admission>,
    connection: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(c) = self.admission.table().connections.get_mut(&self.connection) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}

/// A request slot, given back when dropped (with the response body).
pub struct SlotTicket {
    admission: Arc<Admission>,
    id: u64,
}

impl SlotTicket {
    /// The response is made and its body handed over: stalls count from `now`.
    pub fn ready(&self, now: Instant) {
        if let Some(s) = self.admission.table().slots.get_mut(&self.id) {
            s.working = false;
            s.progress = now;
        }
    }

    /// The body handed a piece to the connection at `now`.
    pub fn progress(&self, now: Instant) {
        self.ready(now);
    }
}

impl Drop for SlotTicket {
    fn drop(&mut self) {
        self.admission.table().slots.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_connection_at_the_limit_closes_the_oldest_idle_one() {
        let a = Admission::new(3, 40);
        let t0 = Instant::now();
        let (busy, _) = a.connect(t0).unwrap();
        let (old, _) = a.connect(t0 + S).unwrap();
        let (young, _) = a.connect(t0 + 2 * S).unwrap();
        let _request = busy.request();
        let (new, evicted) = a.connect(t0 + 3 * S).unwrap();
        assert!(evicted);
        assert!(old.closed().is_cancelled(), "the oldest idle one");
        assert!(
            !busy.closed().is_cancelled(),
            "a request in flight keeps it"
        );
        assert!(!young.closed().is_cancelled());
        assert_eq!(a.counts().0, 3);
        assert_eq!(a.closed(Closed::Idle), 1);
        drop(old);
        assert_eq!(a.counts().0, 3, "its ticket dropping later changes nothing");
        // One that has sent bytes (a kept-alive scraper) goes after the silent ones.
        young.spoke();
        let (newer, _) = a.connect(t0 + 4 * S).unwrap();
        assert!(
            new.closed().is_cancelled(),
            "the silent one, though younger"
        );
        assert!(!young.closed().is_cancelled());
        // A silent one with bytes waiting has spoken (its request is not read yet).
        newer.waiting(|| true);
        let (_last, _) = a.connect(t0 + 5 * S).unwrap();
        assert!(!newer.closed().is_cancelled(), "bytes waiting");
        assert!(young.closed().is_cancelled(), "the oldest that spoke");
    }

    #[test]
    fn a_new_connection_is_refused_when_every_one_has_a_request_in_flight() {
        let a = Admission::new(2, 40);
        let t0 = Instant::now();
        let (c1, _) = a.connect(t0).unwrap();
        let (c2, _) = a.connect(t0).unwrap();
        let r1 = c1.request();
        let _r2 = c2.request();
        assert!(a.connect(t0 + S).is_none());
        drop(r1);
        let (_c3, evicted) = a.connect(t0 + S).unwrap();
        assert!(evicted && c1.closed().is_cancelled());
    }

    #[test]
    fn a_full_table_gives_the_longest_stalled_slot_to_a_new_request() {
        let a = Admission::new(100, 2);
        let t0 = Instant::now();
        let (c1, _) = a.connect(t0).unwrap();
        let (c2, _) = a.connect(t0).unwrap();
        let (c3, _) = a.connect(t0).unwrap();
        let s1 = a.slot(c1.id(), t0).unwrap().0;
        let s2 = a.slot(c2.id(), t0).unwrap().0;
        s1.ready(t0);
        s2.ready(t0);
        s2.progress(t0 + S / 2);
        // Neither has stalled for over a second yet.
        assert_eq!(a.slot(c3.id(), t0 + S).err(), Some(Refused::Full));
        let (s3, evicted) = a.slot(c3.id(), t0 + S + S / 4).unwrap();
        assert!(evicted);
        assert!(c1.closed().is_cancelled(), "the one stalled longest");
        assert!(!c2.closed().is_cancelled());
        assert_eq!(a.counts().1, 2);
        assert_eq!(a.closed(Closed::Stalled), 1);
        // A connection that holds a slot already cannot take another's, however stalled.
        assert_eq!(a.slot(c3.id(), t0 + 5 * S).err(), Some(Refused::Full));
        assert!(!c2.closed().is_cancelled());
        // A response still being made (a reload) is not stalled, however long it takes.
        let (c4, _) = a.connect(t0).unwrap();
        drop(s2);
        let _working = a.slot(c2.id(), t0 + 2 * S).unwrap();
        s3.ready(t0 + 10 * S);
        assert_eq!(a.slot(c4.id(), t0 + 10 * S).err(), Some(Refused::Full));
        drop(s1);
    }

    #[test]
    fn one_connection_holds_at_most_its_share_of_slots() {
        let a = Admission::new(10, 40);
        let t0 = Instant::now();
        let (c, _) = a.connect(t0).unwrap();
        let held: Vec<_> = (0..PER_CONNECTION)
            .map(|_| a.slot(c.id(), t0).unwrap().0)
            .collect();
        assert_eq!(a.slot(c.id(), t0).err(), Some(Refused::Connection));
        drop(held);
        assert!(a.slot(c.id(), t0).is_ok());
    }

    #[test]
    fn the_sweep_closes_connections_whose_response_made_no_progress_for_the_timeout() {
        let a = Admission::new(10, 0);
        let t0 = Instant::now();
        let (slow, _) = a.connect(t0).unwrap();
        let (fast, _) = a.connect(t0).unwrap();
        let (making, _) = a.connect(t0).unwrap();
        let s1 = a.slot(slow.id(), t0).unwrap().0;
        let s2 = a.slot(fast.id(), t0).unwrap().0;
        let _s3 = a.slot(making.id(), t0).unwrap().0;
        s1.ready(t0);
        s2.ready(t0);
        s2.progress(t0 + 9 * S);
        assert_eq!(a.sweep(t0 + 10 * S - S / 10, 10 * S), 0);
        assert_eq!(a.sweep(t0 + 10 * S, 10 * S), 1);
        assert!(slow.closed().is_cancelled());
        assert!(!fast.closed().is_cancelled());
        assert!(!making.closed().is_cancelled());
        assert_eq!(a.closed(Closed::WriteTimeout), 1);
        assert_eq!(a.counts().1, 2);
    }

    #[test]
    fn without_a_request_limit_every_request_gets_a_slot() {
        let a = Admission::new(1000, 0);
        let t0 = Instant::now();
        let tickets: Vec<_> = (0..200)
            .map(|_| {
                let (c, _) = a.connect(t0).unwrap();
                let s = a.slot(c.id(), t0).unwrap().0;
                (c, s)
            })
            .collect();
        assert_eq!(a.counts(), (200, 200));
        drop(tickets);
        assert_eq!(a.counts(), (0, 0));
    }
}
