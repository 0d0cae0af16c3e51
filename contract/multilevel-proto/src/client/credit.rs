//! How much credit an iterator or a watch offers the server across connections.

/// The least credit a reopened iterator or watch offers, whatever the connections before it
/// delivered.
const MIN_CREDIT_CAP: u64 = 256;

/// The most credit the server may hold for one iterator or watch: cut to a quarter when a
/// connection ended in the middle of a frame from the server before anything arrived on it, so
/// that on a link that drops every few hundred bytes the server's frames shrink until they get
/// through; doubled with each grant after that, back to the window. A connection that ends
/// between frames (a quiet watch across clean reconnects) changes nothing.
#[derive(Debug)]
pub(super) struct CreditCap {
    cap: u64,
    /// The last connection ended in the middle of a frame with nothing received on it.
    shrink: bool,
    /// Something arrived on the current connection.
    received: bool,
}

impl Default for CreditCap {
    fn default() -> Self {
        Self { cap: u64::MAX, shrink: false, received: false }
    }
}

impl CreditCap {
    /// Entries or events arrived on the current connection.
    pub(super) fn received(&mut self) {
        self.received = true;
    }

    /// The connection it was open on ended; `cut_mid_frame` says it ended in the middle of a
    /// frame from the server.
    pub(super) fn connection_lost(&mut self, cut_mid_frame: bool) {
        self.shrink = cut_mid_frame && !self.received;
    }

    /// It is opened on a new connection: the credit to offer, at most `credit`.
    pub(super) fn reopen(&mut self, credit: u64, window: u64) -> u64 {
        if std::mem::take(&mut self.shrink) {
            self.cap = (self.cap.min(window) / 4).max(MIN_CREDIT_CAP);
        }
        self.received = false;
        self.limit(credit)
    }

    /// `credit`, at most the cap.
    pub(super) fn limit(&self, credit: u64) -> u64 {
        credit.min(self.cap)
    }

    /// Credit to add to a grant of consumed bytes while the cap is below the window: as much
    /// again as the cap, so a shrunken credit grows back within the connection.
    pub(super) fn growth(&mut self, window: u64) -> u64 {
        if self.cap >= window {
            return 0;
        }
        let growth = self.cap.min(window - self.cap);
        self.cap += growth;
        growth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_only_after_a_cut_frame_with_nothing_received_and_grows_back() {
        let window = 4096;
        let mut cap = CreditCap::default();
        assert_eq!(cap.reopen(window, window), window);
        cap.connection_lost(false);
        assert_eq!(cap.reopen(window, window), window, "a clean end keeps the window");
        cap.received();
        cap.connection_lost(true);
        assert_eq!(cap.reopen(window, window), window, "something arrived: no shrink");
        cap.connection_lost(true);
        assert_eq!(cap.reopen(window, window), 1024);
        cap.connection_lost(true);
        assert_eq!(cap.reopen(window, window), 256);
        cap.connection_lost(true);
        assert_eq!(cap.reopen(window, window), MIN_CREDIT_CAP, "never below the minimum");
        assert_eq!((cap.growth(window), cap.growth(window), cap.growth(window)), (256, 512, 1024));
        assert_eq!(cap.growth(window), 2048);
        assert_eq!(cap.growth(window), 0, "back to the window");
    }
}
