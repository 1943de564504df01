//! knock-server as a library: the daemon's parts, shared by its binary (`main.rs`: arguments,
//! logging and wiring only) and by tests, which drive the engine without root, processes or
//! clocks.
//!
//! - [`capture`]: the pcap thread (packets in, hits out, never blocks);
//! - [`engine`]: the daemon's decisions as a state machine with no I/O (hits, time, signals,
//!   control requests in; effects out);
//! - [`executor`]: performs the engine's effects (commands, nftables, mail, the journal);
//! - [`exec`], [`perform`] and [`actions`]: what a door does when it opens;
//! - [`journal`]: pending stop commands on disk, so a crash never leaves a door open;
//! - [`rotating`]: rotating doors (authenticated knocks, PROTOCOL.md) beside the tracker;
//! - [`keys`]: `keygen` and `pair`, and reading key files;
//! - [`completions`]: the shell completion scripts, from the clap definition;
//! - [`control`]: the control socket's requests and answers;
//! - [`filter`]: the kernel BPF filter of the doors' ports, of bounded size;
//! - [`host`]: this host's addresses, MACs and VLANs, for the decoder, and their netlink watch;
//! - [`log`]: knockd's log lines to LogFile, syslog and stderr;
//! - [`stage_lines`]: the flood-proof budget of `Stage` lines;
//! - [`instance`]: what one of several daemons on a host owns, and its lock;
//! - [`control_socket`] and [`operator`]: `status` and `close`, from the command line to
//!   the engine and back;
//! - [`table_watch`]: our nftables table, followed through `nft monitor`;
//! - [`files`], [`pidfile`] and [`onetime_file`]: paths made absolute, files opened without
//!   following symlinks, one-time sequences marked in place.

pub mod actions;
pub mod capture;
pub mod cli;
pub mod completions;
pub mod control;
pub mod control_socket;
pub mod engine;
pub mod exec;
pub mod executor;
pub mod files;
pub mod filter;
pub mod host;
pub mod instance;
pub mod journal;
pub mod keys;
pub mod load;
pub mod log;
pub mod man;
pub mod onetime_file;
pub mod operator;
pub mod perform;
pub mod pidfile;
pub mod rotating;
pub mod stage_lines;
pub mod table_watch;
