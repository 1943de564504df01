//! The per-source knock state machine.
