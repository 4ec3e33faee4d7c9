//! The gptprio attribute bits of a GPT entry (the Chrome OS scheme GRUB's `gptprio.next` reads).
//!
//! | bits  | meaning | on |
//! |-------|---------|----|
//! | 48–51 | priority (0 = never boot) | each set's BOOT entry |
//! | 52–55 | tries left | each set's BOOT entry |
//! | 56    | successful | each set's BOOT entry |
//! | 57    | boot has ever succeeded | the PRIVATE entry |
//!
//! Every other bit (0–47 are the GPT's own, 58–63 unused) is kept as it was read.

use std::fmt;

const PRIORITY_SHIFT: u32 = 48;
const TRIES_SHIFT: u32 = 52;
const NIBBLE: u64 = 0xf;
const SUCCESSFUL_BIT: u32 = 56;
const BOOT_EVER_SUCCEEDED_BIT: u32 = 57;

/// The largest priority or tries-left value (4 bits).
pub const MAX_NIBBLE: u8 = 15;

/// The 64 attribute bits of a GPT entry, read through named accessors.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct GptPrio(u64);

impl GptPrio {
    /// The raw attribute bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn priority(self) -> u8 {
        self.nibble(PRIORITY_SHIFT)
    }

    /// Panics if `priority > 15`: priorities are constants of this crate, never input.
    pub fn set_priority(&mut self, priority: u8) {
        self.set_nibble(PRIORITY_SHIFT, priority);
    }

    pub fn tries_left(self) -> u8 {
        self.nibble(TRIES_SHIFT)
    }

    /// Panics if `tries_left > 15`.
    pub fn set_tries_left(&mut self, tries_left: u8) {
        self.set_nibble(TRIES_SHIFT, tries_left);
    }

    pub fn successful(self) -> bool {
        self.bit(SUCCESSFUL_BIT)
    }

    pub fn set_successful(&mut self, successful: bool) {
        self.set_bit(SUCCESSFUL_BIT, successful);
    }

    /// Upstream signpost's notion of a bootable set: `(priority > 0 && tries_left > 0) || successful`. (GRUB's own
    /// rule, in [`crate::boot_rule`], also needs `priority > 0` for a successful set.)
    #[must_use]
    pub fn will_boot(self) -> bool {
        (self.priority() > 0 && self.tries_left() > 0) || self.successful()
    }

    /// Bit 57, meaningful on the PRIVATE entry: the node has booted successfully at least once.
    #[must_use]
    pub fn boot_ever_succeeded(self) -> bool {
        self.bit(BOOT_EVER_SUCCEEDED_BIT)
    }

    pub fn set_boot_ever_succeeded(&mut self, succeeded: bool) {
        self.set_bit(BOOT_EVER_SUCCEEDED_BIT, succeeded);
    }

    fn nibble(self, shift: u32) -> u8 {
        // The mask keeps the value within 4 bits, so the narrowing cannot lose anything.
        ((self.0 >> shift) & NIBBLE) as u8
    }

    fn set_nibble(&mut self, shift: u32, value: u8) {
        assert!(
            value <= MAX_NIBBLE,
            "gptprio field value {value} does not fit in 4 bits"
        );
        self.0 = (self.0 & !(NIBBLE << shift)) | (u64::from(value) << shift);
    }

    fn bit(self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }

    fn set_bit(&mut self, bit: u32, value: bool) {
        if value {
            self.0 |= 1 << bit;
        } else {
            self.0 &= !(1 << bit);
        }
    }
}

impl From<u64> for GptPrio {
    fn from(bits: u64) -> Self {
        Self(bits)
    }
}

impl From<GptPrio> for u64 {
    fn from(flags: GptPrio) -> Self {
        flags.0
    }
}

/// Upstream's format: `priority=1 tries_left=0 successful=true`.
impl fmt::Display for GptPrio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "priority={} tries_left={} successful={}",
            self.priority(),
            self.tries_left(),
            self.successful()
        )
    }
}

impl fmt::Debug for GptPrio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GptPrio({:#018x}: {self})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_match_upstreams_bit_positions() {
        let mut prio = GptPrio::from(0x5555_5555_5555_5555);
        assert_eq!(prio.priority(), 5);
        assert_eq!(prio.tries_left(), 5);
        assert!(prio.successful());
        assert!(prio.will_boot());
        prio.set_priority(0);
        assert_eq!(prio.bits(), 0x5550_5555_5555_5555);
        prio.set_tries_left(0);
        assert_eq!(prio.bits(), 0x5500_5555_5555_5555);
        prio.set_successful(false);
        assert_eq!(prio.bits(), 0x5400_5555_5555_5555);
        assert!(!prio.will_boot());
        assert!(!prio.boot_ever_succeeded());
        prio.set_boot_ever_succeeded(true);
        assert!(prio.boot_ever_succeeded());
        assert_eq!(prio.bits(), 0x5600_5555_5555_5555);
    }

    #[test]
    fn a_fresh_boot_a_entry_is_sgdisk_set_48_and_56() {
        let mut prio = GptPrio::default();
        prio.set_priority(1);
        prio.set_successful(true);
        assert_eq!(prio.bits(), (1 << 48) | (1 << 56));
        assert_eq!(prio.to_string(), "priority=1 tries_left=0 successful=true");
    }

    #[test]
    fn setters_touch_only_their_field() {
        let mut prio = GptPrio::from(u64::MAX);
        prio.set_priority(2);
        prio.set_tries_left(1);
        assert_eq!(prio.priority(), 2);
        assert_eq!(prio.tries_left(), 1);
        assert_eq!(prio.bits() | (0xff << 48), u64::MAX);
    }

    #[test]
    fn will_boot_needs_priority_and_tries_or_success() {
        let with = |priority, tries, successful| {
            let mut prio = GptPrio::default();
            prio.set_priority(priority);
            prio.set_tries_left(tries);
            prio.set_successful(successful);
            prio.will_boot()
        };
        assert!(with(2, 1, false));
        assert!(!with(0, 1, false));
        assert!(!with(2, 0, false));
        assert!(with(0, 0, true));
    }

    #[test]
    #[should_panic(expected = "does not fit in 4 bits")]
    fn a_priority_above_15_is_a_bug() {
        GptPrio::default().set_priority(16);
    }
}
