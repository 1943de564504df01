//! The knock-server binary's command line, without a network: `--check`, config errors,
//! startup errors. Exit status 2 for every usage, config and startup error.

use std::path::Path;
use std::process::{Command, Output};

fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knock-server"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run knock-server")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn check_prints_the_doors_it_understood() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[options]\n  UseSyslog\n\n[openSSH]\n  sequence = 7000,8000:udp,9000\n  seq_timeout = 5\n  tcpflags = syn\n  command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n",
    );
    let out = server(&["--check", "-c", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in [
        "openSSH",
        "7000:tcp,8000:udp,9000:tcp",
        "syn",
        "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT",
        "capture filter: ",
    ] {
        assert!(stdout.contains(want), "{want} missing from:\n{stdout}");
    }
}

#[test]
fn check_reports_a_kernel_sized_filter_for_ten_thousand_doors() {
    let dir = tempfile::tempdir().unwrap();
    let doors = knock_e2e::many_doors(10_000, "  command = /bin/true %IP%\n");
    let conf = write(dir.path(), "knockd.conf", &doors);
    let out = server(&["--check", "-c", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let size: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("capture filter: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no filter size in:\n{stdout}"));
    assert!(size <= 4096, "{size} instructions");
}

#[test]
fn check_accepts_debians_stock_knockd_conf() {
    let stock = Path::new("/etc/knockd.conf");
    assert!(
        stock.exists(),
        "install Debian's knockd package (scripts/setup-debian does)"
    );
    let out = server(&["--check", "-c", "/etc/knockd.conf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn bad_configs_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "bad.conf",
        "[door]\n  sequence = 7000,70000\n  sequnce = 1\n",
    );
    let out = server(&["--check", "-c", &conf]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{conf}:2")), "{err}");
    assert!(
        err.contains(&format!("{conf}:3")),
        "every error is reported, not just the first:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let toml = write(dir.path(), "bad.toml", "[doors.d]\nsequnce = \"1,2\"\n");
    let out = server(&["--check", "-c", &toml]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{toml}:2")) && err.contains("did you mean `sequence`"),
        "{err}"
    );
}

#[test]
fn missing_config_and_unknown_flags_exit_2() {
    let out = server(&["--check", "-c", "/nonexistent/knockd.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/knockd.conf"),
        "{}",
        text(&out.stderr)
    );
    let out = server(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_interface_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "k.conf", "[d]\n  sequence = 1\n");
    let run = dir.path().join("run").display().to_string();
    let out = server(&["-i", "knock-nosuch0", "-c", &conf, "--runtime-dir", &run]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("knock-nosuch0"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn version_and_help() {
    let out = server(&["-V"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("knock-server "));
    let out = server(&["--help"]);
    assert!(out.status.success());
    for flag in [
        "--interface",
        "--daemon",
        "--config",
        "--debug",
        "--lookup",
        "--pidfile",
        "--logfile",
        "--verbose",
        "--only-ip-v4",
        "--check",
    ] {
        assert!(text(&out.stdout).contains(flag), "{flag}");
    }
}

#[test]
fn check_warns_about_shell_syntax_that_would_run_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "k.conf",
        "[log]\n  sequence = 1\n  command = echo %IP% >> /tmp/knocks\n",
    );
    let out = server(&["--check", "-c", &conf]);
    assert!(out.status.success(), "a warning is not an error");
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: log: start_command uses shell syntax (`>>`)")
            && err.contains("/bin/sh -c 'echo %IP% >> /tmp/knocks'"),
        "{err}"
    );
}

#[test]
fn the_shipped_examples_pass_check() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["knockd.conf", "server.toml"] {
        let path = examples.join(name);
        let out = server(&["--check", "-c", path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).is_empty(),
            "{name} has warnings: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_used_up_one_time_file_disables_its_door_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "seqs", "#1,2\n");
    let conf = write(
        dir.path(),
        "k.conf",
        "[once]\n  one_time_sequences = seqs\n[other]\n  sequence = 3\n",
    );
    let out = server(&["--check", "-c", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: once: no unused sequence left in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn status_and_close_without_a_daemon_exit_2_naming_socket_and_instance() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().display().to_string();
    for args in [
        vec!["status", "--runtime-dir", &run, "--instance", "eth0"],
        vec![
            "close",
            "--all",
            "--runtime-dir",
            &run,
            "--instance",
            "eth0",
        ],
    ] {
        let out = server(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("instance `eth0`")
                && err.contains(&format!("{run}/eth0.sock"))
                && err.contains("no daemon is running"),
            "{err}"
        );
    }
}

#[test]
fn a_second_daemon_of_a_running_instance_refuses_naming_its_pid() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "k.conf", "[door]\n  sequence = 1,2\n");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // What a running daemon holds: the lock, with its pid inside.
    let mut lock = std::fs::File::create(run.join("wan.lock")).unwrap();
    writeln!(lock, "4242").unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let state = dir.path().join("state").display().to_string();
    let run = run.display().to_string();
    let out = server(&[
        "-c",
        &conf,
        "--instance",
        "wan",
        "--runtime-dir",
        &run,
        "--state-file",
        &state,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("instance `wan` is already running (pid 4242"),
        "{err}"
    );
}

#[test]
fn a_symlinked_state_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "k.conf", "[door]\n  sequence = 1,2\n");
    let target = write(dir.path(), "precious", "keep\n");
    let link = dir.path().join("state");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let run = dir.path().join("run").display().to_string();
    let link = link.display().to_string();
    let out = server(&["-c", &conf, "--runtime-dir", &run, "--state-file", &link]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("state file {link} is a symbolic link")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
}

#[test]
fn an_invalid_instance_name_is_a_usage_error() {
    let out = server(&["status", "--instance", "../etc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid instance name"));
}

#[test]
fn a_symlinked_one_time_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = write(dir.path(), "real", " 1,2\n");
    let link = dir.path().join("seqs");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let conf = write(
        dir.path(),
        "k.conf",
        &format!("[otp]\n  one_time_sequences = {}\n", link.display()),
    );
    let out = server(&["--check", "-c", &conf]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&link.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
}

#[test]
fn keygen_then_check_and_pair_a_rotating_door_and_refuse_a_readable_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ssh.key");
    let out = server(&["keygen", &key.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conf = write(
        dir.path(),
        "server.toml",
        "[doors.ssh]\nsecret_file = \"ssh.key\"\n[doors.web]\nsequence = \"2000\"\n",
    );
    let out = server(&["--check", "-c", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rotating: 3 knocks in 1024-65535 every 30 s, sealed"));

    let out = server(&["pair", "-c", &conf, "ssh"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_text = std::fs::read_to_string(&key).unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains(key_text.trim()), "{stdout}");
    assert!(
        stdout.contains(
            "ssh = { secret_file = \"~/.config/knock/keys/ssh.key\", knocks = 3, \
             ports = \"1024-65535\", step_seconds = 30, sealed = true }"
        ),
        "{stdout}"
    );
    let out = server(&["pair", "-c", &conf, "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("door `web` is not a rotating door"));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = server(&["--check", "-c", &conf]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("server.toml:2:")
            && stderr.contains("is mode 0644")
            && stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
}

#[test]
fn a_state_file_others_can_write_is_refused_before_anything_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "k.conf", "[door]\n  sequence = 1,2\n");
    // The hostile test's file: a world-writable state file in a world-writable directory,
    // holding a record for a door the config does not have.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let marker = dir.path().join("ran");
    let state = shared.join("k.state");
    std::fs::write(
        &state,
        format!(
            "open 1 1 nosuchdoor 198.18.0.99 harmless /bin/sh -c 'id > {}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = dir.path().join("run").display().to_string();
    let state_arg = state.display().to_string();
    let out = server(&[
        "-c",
        &conf,
        "--runtime-dir",
        &run,
        "--state-file",
        &state_arg,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("is mode 1777") && err.contains("chmod go-w"),
        "{err}"
    );
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = server(&[
        "-c",
        &conf,
        "--runtime-dir",
        &run,
        "--state-file",
        &state_arg,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("k.state is mode 0666"), "{err}");
    assert!(!marker.exists(), "the record's command ran");
}
