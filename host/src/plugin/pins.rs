//! What a grader could otherwise vary from one run to the next, pinned:
//! its WASI randomness comes from a seed drawn per grading, and its clocks
//! are virtual, starting from the moment grading began and advancing a
//! microsecond per reading. The pins are recorded in the transcript, so a
//! replay of an unchanged grader sees the same random bytes and the same
//! times, and writes the same report byte for byte.
//!
//! The seed is secret to staff: drawn from the operating system for each
//! grading (never derived from what the student sent), so a student cannot
//! predict a grader's random test inputs.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// How far a virtual clock moves at each reading.
const TICK: Duration = Duration::from_micros(1);

/// One grading's seed and start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pins {
    /// Lower-case hex of the 32-byte seed of the grader's random streams.
    pub seed: String,
    /// The grader's wall clock at its first reading, in nanoseconds since
    /// the Unix epoch.
    pub clock_start_ns: u64,
}

impl Pins {
    /// Pins for a new grading: a fresh seed, and now.
    #[must_use]
    pub fn fresh() -> Self {
        let mut seed = [0u8; 32];
        // Without the system's randomness nothing else works either; a zero
        // seed is still a pinned, replayable one.
        let _ = getrandom::fill(&mut seed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seed: crate::layout::hex(&seed),
            clock_start_ns: u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The pins of a call that grades nothing (`describe`): fixed, so a
    /// grader describes itself the same way every time.
    #[must_use]
    pub fn fixed() -> Self {
        Self {
            seed: "0".repeat(64),
            clock_start_ns: 0,
        }
    }

    /// The seed's bytes; a malformed one (a transcript edited by hand) is
    /// hashed into a seed, still deterministic.
    fn seed_bytes(&self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        let parsed = (0..32).try_for_each(|i| {
            let pair = self.seed.get(2 * i..2 * i + 2).ok_or(())?;
            seed[i] = u8::from_str_radix(pair, 16).map_err(|_| ())?;
            Ok::<(), ()>(())
        });
        if parsed.is_err() || self.seed.len() != 64 {
            use sha2::Digest;
            seed = sha2::Sha256::digest(self.seed.as_bytes()).into();
        }
        seed
    }

    /// Gives `builder` these pins: both random streams, the insecure seed
    /// and both clocks.
    pub(crate) fn apply(&self, builder: &mut WasiCtxBuilder) {
        let seed = self.seed_bytes();
        let mut insecure = seed;
        insecure[0] ^= 0x5a;
        let mut insecure_seed = [0u8; 16];
        insecure_seed.copy_from_slice(&seed[16..]);
        builder
            .secure_random(StdRng::from_seed(seed))
            .insecure_random(StdRng::from_seed(insecure))
            .insecure_random_seed(u128::from_le_bytes(insecure_seed))
            .wall_clock(VirtualWall {
                start: Duration::from_nanos(self.clock_start_ns),
                readings: Cell::new(0),
            })
            .monotonic_clock(VirtualMonotonic {
                readings: Cell::new(0),
            });
    }
}

/// Advances `readings` by one and says how far the clock has moved.
fn tick(readings: &Cell<u32>) -> Duration {
    let n = readings.get();
    readings.set(n.saturating_add(1));
    TICK * n
}

/// A wall clock that starts at a recorded time.
struct VirtualWall {
    start: Duration,
    readings: Cell<u32>,
}

impl HostWallClock for VirtualWall {
    fn resolution(&self) -> Duration {
        TICK
    }

    fn now(&self) -> Duration {
        self.start + tick(&self.readings)
    }
}

/// A monotonic clock that starts at zero.
struct VirtualMonotonic {
    readings: Cell<u32>,
}

impl HostMonotonicClock for VirtualMonotonic {
    fn resolution(&self) -> u64 {
        u64::try_from(TICK.as_nanos()).unwrap_or(1)
    }

    fn now(&self) -> u64 {
        u64::try_from(tick(&self.readings).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_round_trips_and_a_bad_one_still_pins() {
        let pins = Pins::fresh();
        assert_eq!(crate::layout::hex(&pins.seed_bytes()), pins.seed);
        let odd = Pins {
            seed: "not hex".into(),
            clock_start_ns: 0,
        };
        assert_eq!(odd.seed_bytes(), odd.seed_bytes());
        assert_ne!(odd.seed_bytes(), [0u8; 32]);
        assert_ne!(Pins::fresh().seed, pins.seed);
    }

    #[test]
    fn virtual_clocks_advance_by_readings_alone() {
        let wall = VirtualWall {
            start: Duration::from_secs(100),
            readings: Cell::new(0),
        };
        assert_eq!(wall.now(), Duration::from_secs(100));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(wall.now(), Duration::from_secs(100) + TICK);
        let mono = VirtualMonotonic {
            readings: Cell::new(0),
        };
        assert_eq!((mono.now(), mono.now()), (0, 1000));
    }
}
