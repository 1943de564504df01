//! Reading the config and one-time sequence files, and writing the latter back safely.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use knock_proto::config::{self, Config, Diagnostics, SequenceSource};

pub use knock_proto::config::Loaded;

/// Reads and checks the config at `path` and the one-time sequence and key files it names
/// (refusing key files others can read or write).
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    // The config itself may be a link (/etc/knockd.conf -> a managed copy): the daemon only
    // reads it. One-time files it also writes, so those must not be (see `onetime_file`).
    config::load_with_keys(
        path,
        |p| {
            if p == path {
                std::fs::read_to_string(p)
            } else {
                crate::onetime_file::read_nofollow(p)
            }
        },
        crate::keys::read_key_file,
    )
}

/// What is worth a warning in a valid config, one line each: doors whose one-time sequence
/// file is used up (disabled), and commands that use shell syntax but, unlike under knockd,
/// run without a shell (with the line that keeps knockd's behaviour).
pub fn warnings(loaded: &Loaded) -> Vec<String> {
    let mut warnings = Vec::new();
    for (door, seqs) in loaded.config.doors.iter().zip(&loaded.one_time) {
        if let (Some(seqs), SequenceSource::OneTime { path, .. }) = (seqs, &door.sequence) {
            if seqs.current().is_none() {
                warnings.push(format!(
                    "{}: no unused sequence left in {}: the door is disabled until you add lines \
                     like ` 7000,8000,9000` (with a leading space) and reload",
                    door.name,
                    path.display()
                ));
            }
        }
    }
    warnings.extend(shell_warnings(&loaded.config));
    warnings
}

/// What is worth a warning about this host for the config: `forward` doors while the host
/// forwards nothing. (Not a config warning: the same file is fine on a router.)
pub fn host_warnings(config: &Config) -> Vec<String> {
    forwarding_warnings(config, |path| std::fs::read_to_string(path).ok())
}

/// `forward` doors on a host that forwards nothing: IPv4 forwarding
/// (`net.ipv4.ip_forward`) or IPv6 forwarding (`net.ipv6.conf.all.forwarding`) off for an
/// inside host of that family. `read` reads a /proc/sys file.
fn forwarding_warnings(config: &Config, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut warnings = Vec::new();
    for (v4, file, sysctl) in [
        (true, "/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"),
        (
            false,
            "/proc/sys/net/ipv6/conf/all/forwarding",
            "net.ipv6.conf.all.forwarding",
        ),
    ] {
        let doors: Vec<&str> = config
            .doors
            .iter()
            .filter(|d| d.actions.forward.iter().any(|f| f.inside.is_ipv4() == v4))
            .map(|d| d.name.as_str())
            .collect();
        let off = read(file).is_some_and(|v| v.trim() == "0");
        if !doors.is_empty() && off {
            warnings.push(format!(
                "{}: forward needs IP forwarding, and {sysctl} is 0: run `sysctl -w \
                 {sysctl}=1` (and set it in /etc/sysctl.d/ to keep it)",
                doors.join(", ")
            ));
        }
    }
    warnings
}

fn shell_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    for door in &config.doors {
        let commands = [
            ("start_command", &door.start_command),
            ("start_command_6", &door.start_command_6),
            ("stop_command", &door.stop_command),
            ("stop_command_6", &door.stop_command_6),
        ];
        for (key, command) in commands {
            let Some(command) = command else { continue };
            if let Some(word) = command.shell_syntax() {
                warnings.push(format!(
                    "{}: {key} uses shell syntax (`{word}`), but commands run without a shell; \
                     to run it through one as knockd does, write: /bin/sh -c '{}'",
                    door.name,
                    command.text().replace('\'', "'\\''")
                ));
            }
        }
    }
    warnings
}

/// Replaces `path` with `text` so that a crash at any moment leaves either the old file or
/// the new one, never a mix: write a temporary file beside it, flush it to disk, rename it
/// over the original (keeping the original's permissions), then flush the directory.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    replace(path, text, None)
}

/// [`write_atomically`], the new file mode 0600 whatever the old one was: the daemon's own
/// state (pending stops, the replay record), which nobody else may write.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    replace(path, text, Some(0o600))
}

fn replace(path: &Path, text: &str, mode: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".knock-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    let permissions = match mode {
        Some(mode) => Some(std::fs::Permissions::from_mode(mode)),
        None => std::fs::metadata(path).ok().map(|m| m.permissions()),
    };
    if let Some(permissions) = permissions {
        tmp.as_file().set_permissions(permissions)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_on_a_host_that_forwards_nothing_gets_a_warning_with_the_fix() {
        let text = "[doors.vpn]\nsequence = \"1\"\nforward = \"1723/tcp -> 198.19.0.2:1723\"\n";
        let config = knock_proto::config::toml::parse(Path::new("k.toml"), text).unwrap();
        let off = |_: &str| Some("0\n".to_owned());
        assert_eq!(
            forwarding_warnings(&config, off),
            [
                "vpn: forward needs IP forwarding, and net.ipv4.ip_forward is 0: run `sysctl -w \
              net.ipv4.ip_forward=1` (and set it in /etc/sysctl.d/ to keep it)"
            ]
        );
        assert!(forwarding_warnings(&config, |_| Some("1\n".to_owned())).is_empty());
    }

    #[test]
    fn shell_syntax_in_a_command_gets_a_warning_with_the_fix() {
        let text = "[door]\n  sequence = 1\n  command = echo \"%IP%'s\" >> /tmp/x\n  stop_command = /bin/true\n";
        let config = knock_proto::config::knockd::parse(Path::new("k.conf"), text).unwrap();
        assert_eq!(
            shell_warnings(&config),
            [
                "door: start_command uses shell syntax (`>>`), but commands run without a shell; \
              to run it through one as knockd does, write: /bin/sh -c 'echo \"%IP%'\\''s\" >> /tmp/x'"
            ]
        );
    }

    #[test]
    fn a_private_write_is_0600_whatever_the_file_was() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.state");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn atomic_write_replaces_content_and_keeps_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seqs");
        std::fs::write(&p, " 1,2,3\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&p, "#1,2,3\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#1,2,3\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
