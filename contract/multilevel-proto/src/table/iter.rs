//! The typed iterator over an adapter's iterator.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{TableError, encode_key};
use crate::Entry;

/// A typed table's iterator: the adapter's iterator `I` with each entry decoded as `T` (a
/// `(K, V)` pair, a `K` or a `V`). An [`Iterator`] over a blocking client's iterator, a
/// [`Stream`] over an async one's; an entry that does not decode is an `Err` item, and the
/// iteration goes on after it. Closed (its server snapshot released) when dropped.
pub struct TableIter<I, K, T> {
    inner: I,
    decode: fn(Entry) -> Result<T, TableError>,
    key: std::marker::PhantomData<fn(&K)>,
}

/// An adapter's iterator that can move to a stored key: what [`TableIter::seek`] needs.
pub trait SeekStored {
    /// Moves to the first stored key at or after `target` (at or before, in reverse).
    fn seek_stored(&mut self, target: &[u8]);
}

impl<I, K, T> TableIter<I, K, T> {
    /// `inner`'s entries decoded by `decode`.
    pub fn new(inner: I, decode: fn(Entry) -> Result<T, TableError>) -> Self {
        Self { inner, decode, key: std::marker::PhantomData }
    }

    /// Moves to the first key at or after `key` in `K`'s order (at or before, for a reverse
    /// iterator), within the iterator's range. The limit keeps counting.
    pub fn seek(&mut self, key: &K) -> Result<(), TableError>
    where
        I: SeekStored,
        K: storekey::Encode,
    {
        self.inner.seek_stored(&encode_key(key)?);
        Ok(())
    }
}

impl<I, K, T> std::fmt::Debug for TableIter<I, K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableIter").field("item", &std::any::type_name::<T>()).finish_non_exhaustive()
    }
}

impl<I, K, T, E> Iterator for TableIter<I, K, T>
where
    I: Iterator<Item = Result<Entry, E>>,
    TableError: From<E>,
{
    type Item = Result<T, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next()?;
        Some(entry.map_err(TableError::from).and_then(self.decode))
    }
}

impl<I, K, T, E> Stream for TableIter<I, K, T>
where
    I: Stream<Item = Result<Entry, E>> + Unpin,
    TableError: From<E>,
{
    type Item = Result<T, TableError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|entry| entry.map(|entry| entry.map_err(TableError::from).and_then(this.decode)))
    }
}
