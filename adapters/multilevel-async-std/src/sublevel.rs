//! Sublevels: views of the database under a name, with the whole client API.

use crate::client::{Client, Iter, Watch};

multilevel_proto::async_sublevel!(Client, Iter, Watch);
