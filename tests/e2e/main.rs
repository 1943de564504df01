//! End-to-end tests across a real veth link between two network namespaces. They need root;
//! see tests/src/lib.rs for the harness.

mod actions;
mod auth;
mod client;
mod firewalls;
mod harness_selftest;
mod lifecycle;
mod operate;
mod proxy;
mod retransmissions;
mod server;
mod together;
mod windows;
mod wire;
