//! The systemd unit in dist/ is accepted by `systemd-analyze verify`, with ExecStart pointed
//! at the binary under test and its man page (Documentation=) on MANPATH. scripts/test
//! installs systemd; on a machine without it the test says so and fails rather than pass
//! silently.

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_accepts_the_unit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: run scripts/setup-debian"
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root.join("dist/knock-server.service")).unwrap();
    let unit = unit.replace("/usr/bin/knock-server", env!("CARGO_BIN_EXE_knock-server"));
    let path = dir.path().join("knock-server.service");
    std::fs::write(&path, unit).unwrap();
    let man8 = dir.path().join("man/man8");
    std::fs::create_dir_all(&man8).unwrap();
    std::fs::copy(root.join("man/knock-server.8"), man8.join("knock-server.8")).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// The directories the unit lets the daemon write to: its RuntimeDirectory, StateDirectory,
/// LogsDirectory, ReadWritePaths, and the private /tmp. ProtectSystem=strict makes the rest
/// read-only.
fn writable_under_the_unit(unit: &str) -> Vec<String> {
    let mut dirs = vec!["/tmp".to_string()];
    for line in unit.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let base = match key.trim() {
            "RuntimeDirectory" => "/run/",
            "StateDirectory" => "/var/lib/",
            "LogsDirectory" => "/var/log/",
            "ReadWritePaths" => "",
            _ => continue,
        };
        for dir in value.split_whitespace() {
            dirs.push(format!("{base}{}", dir.trim_start_matches('-')));
        }
    }
    assert!(unit.contains("ProtectSystem=strict"), "{unit}");
    dirs
}

/// Paths a config file makes the daemon write: pid and log files, and the targets of `>`
/// and `>>` in commands. Commented lines count too (the packaged config is all examples).
fn written_paths(config: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in config.lines() {
        let line = line.trim_start_matches(['#', ' ', '\t']);
        let key = line.split(['=', ' ']).next().unwrap_or("");
        let value = line.split_once('=').map(|(_, v)| v.trim());
        if let (Some(value), true) = (
            value,
            ["pid_file", "log_file", "PidFile", "LogFile"].contains(&key),
        ) {
            let value = value.split('#').next().unwrap().trim().trim_matches('"');
            paths.push(value.to_string());
        }
        // `a >> b` splits into "a ", "", " b": the empty piece is the first `>` of `>>`.
        for piece in line.split('>').skip(1).filter(|p| !p.is_empty()) {
            let target: String = piece
                .trim_start()
                .chars()
                .take_while(|c| !c.is_whitespace() && !"'\"".contains(*c))
                .collect();
            if target.starts_with('/') {
                paths.push(target);
            }
        }
    }
    paths
}

#[test]
fn every_path_the_daemon_and_the_examples_write_is_writable_under_the_unit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("dist/knock-server.service")).unwrap();
    let writable = writable_under_the_unit(&unit);
    let is_writable = |p: &str| {
        writable
            .iter()
            .any(|d| Path::new(p).starts_with(Path::new(d)))
    };
    // The daemon's own defaults, as --help prints them (state file, sockets, ...).
    let help = Command::new(env!("CARGO_BIN_EXE_knock-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut checked = Vec::new();
    for default in help.split("[default: ").skip(1) {
        let path = default.split([']', ' ']).next().unwrap();
        if path.starts_with("/var/") || path.starts_with("/run/") {
            checked.push(("--help".to_string(), path.to_string()));
        }
    }
    assert!(!checked.is_empty(), "no default paths in --help: {help}");
    for file in [
        "examples/server.toml",
        "examples/knockd.conf",
        "dist/debian/server.toml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for path in written_paths(&text) {
            checked.push((file.to_string(), path));
        }
    }
    let bad: Vec<_> = checked.iter().filter(|(_, p)| !is_writable(p)).collect();
    assert!(
        bad.is_empty(),
        "read-only under the unit (writable: {writable:?}): {bad:?}"
    );
    assert!(checked.len() > 3, "{checked:?}");
}

#[test]
fn written_paths_finds_pid_log_and_redirect_targets() {
    let config = "pid_file = \"/run/x.pid\"  # c\n#   LogFile = /var/log/k.log\n\
                  command = \"/bin/sh -c 'echo %IP% >>/srv/a' > /srv/b\"\n";
    assert_eq!(
        written_paths(config),
        ["/run/x.pid", "/var/log/k.log", "/srv/a", "/srv/b"]
    );
}
