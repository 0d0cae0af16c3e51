//! The ids that key the state machines' maps, and their cheap hasher.

/// Hashes the `u64` ids that key the state machines' maps (request, iterator and store
/// operation ids): one multiplication instead of SipHash. Ids are chosen by this process or
/// increase by one, so there is no hash flooding to defend against. Public for the adapters'
/// own id-keyed maps; do not use it for keys a peer chooses freely.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fx-style: mixes sequential ids into the high bits hashbrown uses for its tags.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A map keyed by ids, hashed with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
