//! Authenticated knocks: rotating sequences derived from a shared key, and sealed SYNs whose
//! TCP sequence numbers carry a MAC (PROTOCOL.md at the repository root is the specification).
//!
//! - [`key`]: the 256-bit key and its base64 text form.
//! - [`ports`]: the set of ports a door draws from (`"1024-65535"`).
//! - [`derive`]: time steps, and a step's sequence from (key, door, step), without bias.
//! - [`seal`]: the nonce and MAC a sealed knock's TCP sequence number carries.
//! - [`verify`]: the server's view: which door, step and knock a hit is, or why not.
//! - [`replay`]: which knocks already opened a door in the steps in force.
//! - [`gate`]: per-source progress through the sequences, and the replay rule.
//!
//! Everything here is pure: the wall clock, the monotonic clock and packets are arguments.

pub mod derive;
pub mod gate;
pub mod key;
pub mod ports;
pub mod replay;
pub mod seal;
pub mod verify;

#[cfg(test)]
mod tests;

pub use derive::Step;
pub use gate::{Gate, Outcome};
pub use key::Key;
pub use ports::PortSet;
pub use replay::ReplayRecord;
pub use seal::Nonce;
pub use verify::{ACCEPTED_STEPS, Refusal, RotatingDoor, Seal, Verified, Verifier};
