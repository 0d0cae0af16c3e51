//! Typed tables: keys and values of Rust types over a sublevel (see [`multilevel_proto::table`]).

use crate::client::{Client, Iter, Sublevel};

multilevel_proto::table_api!(Client, Sublevel, Iter);
