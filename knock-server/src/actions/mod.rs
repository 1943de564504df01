//! What a door does when it opens, besides commands: Wake-on-LAN, a mail notice, and a port
//! opened to the knocker in the server's own nftables table.

pub mod firewall;
pub mod mail;
pub mod wol;
