//! Several addresses of one database, for client failover.
//!
//! Servers in front of one replicated backend (e.g. two `multilevel serve --etcd` processes)
//! serve the same data: a client given all their addresses connects to whichever answers, and
//! after losing its connection starts with the next one, so a dead server costs it one
//! reconnect, and so does one that still accepts connections but cannot serve. Writes replayed
//! on another server are still applied at most once: the session record lives in the shared
//! backend.

use std::future::Future;
use std::io;
use std::sync::Mutex;

/// The addresses a client's connector tries, in turn, starting after the one that connected
/// last.
#[derive(Debug, Clone)]
pub struct Endpoints<A> {
    list: Vec<A>,
    next: usize,
}

impl<A> Endpoints<A> {
    /// The addresses to try; `None` if there are none.
    pub fn new(list: impl IntoIterator<Item = A>) -> Option<Self> {
        let list: Vec<A> = list.into_iter().collect();
        (!list.is_empty()).then_some(Self { list, next: 0 })
    }

    /// Every address with its index, in the order given (wrapping around), starting after the
    /// one that connected last: a connection is made again only after it was lost, and then
    /// the next server is the better bet. A connector tries them in this order and reports
    /// the one that connected with [`connected`](Self::connected).
    pub fn in_order(&self) -> impl Iterator<Item = (usize, &A)> {
        let n = self.list.len();
        (0..n).map(move |k| {
            let i = (self.next + k) % n;
            (i, &self.list[i])
        })
    }

    /// Says the address at `index` connected: the next attempt starts after it.
    pub fn connected(&mut self, index: usize) {
        if index < self.list.len() {
            self.next = (index + 1) % self.list.len();
        }
    }

    /// How many addresses there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always false: there is at least one address.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl<A: Clone> Endpoints<A> {
    /// Connects to the first of `endpoints` (in [`in_order`](Self::in_order)) that `connect`
    /// reaches, and remembers it; fails with the first address's error when none is reached,
    /// or `InvalidInput` when there is no address. Runtime-neutral: it only awaits the futures
    /// `connect` returns, one after the other.
    pub async fn connect_any<T, F, Fut>(endpoints: &Mutex<Option<Self>>, mut connect: F) -> io::Result<T>
    where
        F: FnMut(A) -> Fut,
        Fut: Future<Output = io::Result<T>>,
    {
        let order: Vec<(usize, A)> = match &*endpoints.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(endpoints) => endpoints.in_order().map(|(i, a)| (i, a.clone())).collect(),
            None => Vec::new(),
        };
        let mut first_error = None;
        for (index, addr) in order {
            match connect(addr).await {
                Ok(connected) => {
                    if let Some(endpoints) = &mut *endpoints.lock().unwrap_or_else(|e| e.into_inner()) {
                        endpoints.connected(index);
                    }
                    return Ok(connected);
                }
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        Err(first_error.unwrap_or_else(no_address))
    }
}

impl<A> Endpoints<A> {
    /// [`connect_any`](Self::connect_any) for a blocking `connect`, which borrows each address.
    pub fn connect_any_blocking<T>(
        endpoints: &mut Option<Self>,
        mut connect: impl FnMut(&A) -> io::Result<T>,
    ) -> io::Result<T> {
        let Some(endpoints) = endpoints else { return Err(no_address()) };
        let mut first_error = None;
        let found = endpoints.in_order().find_map(|(index, addr)| match connect(addr) {
            Ok(connected) => Some((index, connected)),
            Err(err) => {
                first_error = first_error.take().or(Some(err));
                None
            }
        });
        let (index, connected) = found.ok_or_else(|| first_error.unwrap_or_else(no_address))?;
        endpoints.connected(index);
        Ok(connected)
    }
}

fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "no server address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_start_after_the_address_that_connected_last() {
        assert!(Endpoints::<u8>::new([]).is_none());
        let mut endpoints = Endpoints::new(["a", "b", "c"]).unwrap();
        let order = |e: &Endpoints<&'static str>| e.in_order().map(|(_, a)| *a).collect::<Vec<&str>>();
        assert_eq!(order(&endpoints), ["a", "b", "c"]);
        endpoints.connected(1);
        assert_eq!(order(&endpoints), ["c", "a", "b"]);
        endpoints.connected(2);
        assert_eq!(order(&endpoints), ["a", "b", "c"]);
        endpoints.connected(7); // out of range: ignored
        assert_eq!(order(&endpoints), ["a", "b", "c"]);
    }
}
