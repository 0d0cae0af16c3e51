//! Typed tables: keys and values of Rust types over a sublevel (see [`multilevel_proto::table`]).

use crate::client::{Client, Iter};
use crate::sublevel::Sublevel;

multilevel_proto::table_api!(Client, Sublevel, Iter, async .await);
