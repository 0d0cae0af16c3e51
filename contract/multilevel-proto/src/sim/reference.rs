//! The reference the simulation is checked against: a `BTreeMap` and plain walks over it,
//! written independently of the protocol's range narrowing.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{BatchOp, ConditionFailed, ErrorCode, IterOptions, Request, Response, WireEntry};

/// The reference store.
pub type Model = BTreeMap<Bytes, Bytes>;

/// Applies a write request to the model.
///
/// # Panics
///
/// If `request` is not a write (`Request::is_write`).
pub fn apply_write(model: &mut Model, request: &Request) {
    let _answer = write_answer(model, request);
}

/// Applies a write request to the model and returns what the store answers: a conditional
/// write applies only if its conditions hold, an increment only on a counter.
///
/// # Panics
///
/// If `request` is not a write (`Request::is_write`).
pub fn write_answer(model: &mut Model, request: &Request) -> Result<Response, ErrorCode> {
    match request {
        Request::Conditional { conditions, ops } => {
            for (index, condition) in conditions.iter().enumerate() {
                let current = model.get(condition.key()).cloned();
                if !condition.holds(current.as_deref()) {
                    let index = u32::try_from(index).expect("few conditions");
                    return Ok(Response::ConditionFailed(ConditionFailed { index, current }));
                }
            }
            apply_write(model, &Request::Batch { ops: ops.clone() });
            return Ok(Response::Done);
        }
        Request::Increment { key, by } => {
            let old = match model.get(key) {
                None => 0,
                Some(stored) => {
                    let text = std::str::from_utf8(stored).map_err(|_| ErrorCode::NotANumber)?;
                    let digits = text.strip_prefix('-').unwrap_or(text);
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ErrorCode::NotANumber);
                    }
                    text.parse::<i64>().map_err(|_| ErrorCode::NotANumber)?
                }
            };
            let new = old.checked_add(*by).ok_or(ErrorCode::NotANumber)?;
            model.insert(key.clone(), Bytes::from(new.to_string()));
            return Ok(Response::Counter(new));
        }
        _ => {}
    }
    match request {
        Request::Put { key, value } => {
            model.insert(key.clone(), value.clone());
        }
        Request::Del { key } => {
            model.remove(key);
        }
        Request::Batch { ops } => {
            for op in ops {
                match op {
                    BatchOp::Put { key, value } => {
                        model.insert(key.clone(), value.clone());
                    }
                    BatchOp::Del { key } => {
                        model.remove(key);
                    }
                }
            }
        }
        Request::Clear { range, reverse, limit } => {
            let mut keys: Vec<Bytes> = model.keys().filter(|k| range.contains(k)).cloned().collect();
            if *reverse {
                keys.reverse();
            }
            keys.truncate(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
            for key in keys {
                model.remove(&key);
            }
        }
        _ => panic!("not a write: {request:?}"),
    }
    Ok(Response::Done)
}

/// The answer a read request gets from the model.
///
/// # Panics
///
/// If `request` is a write.
pub fn read(model: &Model, request: &Request) -> Response {
    match request {
        Request::Get { key } => Response::Value(model.get(key).cloned()),
        Request::GetMany { keys } => Response::Values(keys.iter().map(|k| model.get(k).cloned()).collect()),
        Request::Stats => Response::Stats(vec![("entries".into(), model.len() as u64)]),
        _ => panic!("not a read: {request:?}"),
    }
}

/// The reference iterator over a model snapshot: range, direction, limit, shape and seeks.
#[derive(Debug)]
pub struct ModelIter {
    entries: Vec<(Bytes, Bytes)>,
    options: IterOptions,
    position: Position,
    yielded: u64,
}

#[derive(Debug)]
enum Position {
    Start,
    After(Bytes),
    AtOrAfter(Bytes),
}

impl ModelIter {
    /// An iterator over `model` as it is now.
    pub fn new(model: &Model, options: &IterOptions) -> Self {
        let mut entries: Vec<(Bytes, Bytes)> =
            model.iter().filter(|(k, _)| options.range.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if options.reverse {
            entries.reverse();
        }
        Self { entries, options: options.clone(), position: Position::Start, yielded: 0 }
    }

    /// Moves to the first key at or after `target` (at or before, in reverse).
    pub fn seek(&mut self, target: Bytes) {
        self.position = Position::AtOrAfter(target);
    }

    /// The next entry, shaped by the options; `None` at the end or the limit.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<WireEntry> {
        if self.options.limit.is_some_and(|l| self.yielded >= l) {
            return None;
        }
        let reverse = self.options.reverse;
        let beyond = |key: &Bytes, mark: &Bytes, inclusive: bool| {
            if reverse { key < mark || (inclusive && key == mark) } else { key > mark || (inclusive && key == mark) }
        };
        let (key, value) = self
            .entries
            .iter()
            .find(|(k, _)| match &self.position {
                Position::Start => true,
                Position::After(mark) => beyond(k, mark, false),
                Position::AtOrAfter(mark) => beyond(k, mark, true),
            })?
            .clone();
        self.position = Position::After(key.clone());
        self.yielded += 1;
        Some(WireEntry { key: self.options.keys.then_some(key), value: self.options.values.then_some(value) })
    }
}
