//! Packet decoding (`knock_proto::wire`) from the outside: frames built with pnet's mutable
//! views, decoded, and compared with what was built.
//!
//! - `links`: every link type, VLAN tags, cooked capture packet types, BSD address families.
//! - `network`: IPv4 and IPv6 (extension headers, fragments) and every skip reason below the
//!   link layer.
//! - `truncation`: every prefix of valid frames.
//! - `props`: property tests, arbitrary bytes and generated packets.

mod frames;
mod host;
mod links;
mod network;
mod props;
mod truncation;
