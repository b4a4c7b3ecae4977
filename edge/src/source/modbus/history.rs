//! What a device's handshake remembers across PLC restarts, counter wraps and edge restarts, so that the
//! event id of a PLC result is unique for the life of the outbox (a re-imaged station starts at era 0 again,
//! in a new outbox epoch) yet the same when the very same result is read again.
//!
//! The id of a result is derived from (station, device, era, counter, registers). An era is a run of counter
//! values that only ever increase; it ends whenever the counter does not move forward from the last result
//! taken: the PLC restarted (its counter and acknowledge register reset), or the u16 counter wrapped. The
//! only result that keeps the era at an unchanged counter is the last one taken, still unacknowledged, with
//! the acknowledge register as it was then: that is a read again after a crash between commit and
//! acknowledgement, and must be recognised as such. The mark is committed with each result, and again once
//! the result is settled: acknowledged by the edge, or no longer offered (the PLC shows another counter, or
//! its acknowledge register holds the counter after an edge crash), so the history survives an edge restart.

/// The handshake's history as committed to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    /// The era of the last result taken.
    pub(super) era: u64,
    /// Its counter value.
    pub(super) counter: u16,
    /// The acknowledge register when it was taken.
    pub(super) ack_before: u16,
    /// Whether the edge has written its acknowledgement.
    pub(super) acknowledged: bool,
}

impl Mark {
    /// The era of a result announced with `counter` while the acknowledge register holds `ack`.
    pub(super) fn era_of(this: Option<Self>, ack: u16, counter: u16) -> u64 {
        match this {
            None => 0,
            Some(mark) if mark.is_again(ack, counter) || counter > mark.counter => mark.era,
            Some(mark) => mark.era + 1,
        }
    }

    fn is_again(&self, ack: u16, counter: u16) -> bool {
        counter == self.counter && ack == self.ack_before && !self.acknowledged
    }

    /// The text kept in the outbox: `era/counter/ack_before/acknowledged`.
    pub(super) fn encode(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.era,
            self.counter,
            self.ack_before,
            u8::from(self.acknowledged)
        )
    }

    /// `None` for a text this version did not write (then the history starts again at era 0).
    pub(super) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let mark = Self {
            era: parts.next()?.parse().ok()?,
            counter: parts.next()?.parse().ok()?,
            ack_before: parts.next()?.parse().ok()?,
            acknowledged: match parts.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        };
        parts.next().is_none().then_some(mark)
    }
}

/// The text an id is derived from. Era 0 keeps the form of the ids before eras existed, so that a result
/// stored by an older edge and read again after its upgrade is still recognised.
pub(super) fn id_key(kind: &str, station: &str, device: &str, era: u64, rest: &str) -> String {
    if era == 0 {
        format!("{kind}:{station}:{device}:{rest}")
    } else {
        format!("{kind}:{station}:{device}:era{era}:{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(era: u64, counter: u16, ack_before: u16, acknowledged: bool) -> Option<Mark> {
        Some(Mark {
            era,
            counter,
            ack_before,
            acknowledged,
        })
    }

    #[test]
    fn a_fresh_outbox_starts_at_era_zero() {
        assert_eq!(Mark::era_of(None, 0, 1), 0);
    }

    #[test]
    fn forward_counters_stay_in_their_era() {
        assert_eq!(Mark::era_of(mark(3, 7, 6, true), 7, 8), 3);
        // A jump (results lost at the station) is still forward.
        assert_eq!(Mark::era_of(mark(3, 7, 6, true), 7, 40), 3);
    }

    #[test]
    fn the_same_unacknowledged_result_read_again_keeps_its_era() {
        assert_eq!(Mark::era_of(mark(2, 5, 4, false), 4, 5), 2);
    }

    #[test]
    fn a_plc_restart_starts_a_new_era() {
        // Result 1 taken and acknowledged; the PLC restarts (counter and ack reset) and announces 1 again.
        assert_eq!(Mark::era_of(mark(0, 1, 0, true), 0, 1), 1);
        // Restarted before the acknowledgement was written, then counting again from 1.
        assert_eq!(Mark::era_of(mark(0, 3, 2, false), 0, 1), 1);
        // Restarted and announcing the same counter, but the acknowledge register was reset.
        assert_eq!(Mark::era_of(mark(0, 3, 2, false), 0, 3), 1);
    }

    #[test]
    fn a_counter_wrap_starts_a_new_era() {
        assert_eq!(Mark::era_of(mark(4, u16::MAX, 65534, true), u16::MAX, 0), 5);
    }

    #[test]
    fn marks_survive_their_text_and_refuse_other_text() {
        let m = mark(9, 65535, 65534, true).unwrap();
        assert_eq!(Mark::decode(&m.encode()), Some(m));
        for bad in [
            "",
            "1/2/3",
            "1/2/3/2",
            "x/2/3/0",
            "1/2/3/0/9",
            "1/70000/3/0",
        ] {
            assert_eq!(Mark::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn era_zero_ids_keep_their_old_form() {
        assert_eq!(id_key("result", "S", "d", 0, "1:ab"), "result:S:d:1:ab");
        assert_eq!(
            id_key("result", "S", "d", 2, "1:ab"),
            "result:S:d:era2:1:ab"
        );
    }
}
