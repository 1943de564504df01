//! The checked-in completion scripts (completions/) and man page (man/knock.1) are exactly what
//! the binary prints, so they cannot drift from the command line.
//!
//! After changing the command line, regenerate them with:
//!
//!     KNOCK_UPDATE_ASSETS=1 cargo test -p knock-client --test assets
//!
//! and commit the result.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each file and the arguments that print it.
const ASSETS: [(&str, &[&str]); 6] = [
    ("completions/knock.bash", &["--completions", "bash"]),
    ("completions/_knock", &["--completions", "zsh"]),
    ("completions/knock.fish", &["--completions", "fish"]),
    ("completions/_knock.ps1", &["--completions", "powershell"]),
    ("completions/knock.elv", &["--completions", "elvish"]),
    ("man/knock.1", &["--man"]),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("knock-client sits in the workspace root")
        .to_owned()
}

/// What `knock ARGS` prints, with the environment cleared so nothing personal leaks in.
fn generate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(args)
        .env_clear()
        .output()
        .expect("run knock");
    assert!(
        out.status.success(),
        "knock {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("assets are UTF-8")
}

#[test]
fn checked_in_assets_are_current() {
    let update = std::env::var_os("KNOCK_UPDATE_ASSETS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, args) in ASSETS {
        let path = repo_root().join(file);
        let want = generate(args);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().expect("file in a directory"))
                .expect("create asset directory");
            std::fs::write(&path, &want).expect("write asset");
        } else {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what knock prints; regenerate with \
         `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-client --test assets` and commit them"
    );
}

/// What `knock` prints with `extra_env` set and no arguments.
fn run_with_env(extra_env: (&str, &str)) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_knock"))
        .env_clear()
        .env(extra_env.0, extra_env.1)
        .output()
        .expect("run knock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 script")
}

#[test]
fn completions_flag_prints_the_registration_and_calls_knock_by_name() {
    for (file, args) in &ASSETS[..5] {
        let script = generate(args);
        // `--completions SHELL` is the same script clap_complete registers for
        // `COMPLETE=SHELL knock`, so either way of installing gives the same result.
        assert_eq!(script, run_with_env(("COMPLETE", args[1])), "{file}");
        assert!(
            !script.contains(env!("CARGO_BIN_EXE_knock")),
            "{file} embeds the build path instead of `knock`"
        );
    }
}

#[test]
fn shells_accept_their_scripts() {
    // Syntax checks that run nothing; bash and fish are also exercised for real in
    // tests/completion.rs. scripts/setup-debian installs these shells.
    for (shell, file, check) in [
        ("zsh", "completions/_knock", "-n"),
        ("fish", "completions/knock.fish", "--no-execute"),
        ("bash", "completions/knock.bash", "-n"),
    ] {
        let path = repo_root().join(file);
        let out = Command::new(shell)
            .arg(check)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {shell} (scripts/setup-debian installs it): {e}")
            });
        assert!(
            out.status.success(),
            "{shell} refuses {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
