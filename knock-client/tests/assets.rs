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

#[test]
fn scripts_call_knock_by_name() {
    for (file, args) in &ASSETS[..5] {
        let script = generate(args);
        assert!(
            !script.contains(env!("CARGO_BIN_EXE_knock")),
            "{file} embeds the build path instead of `knock`"
        );
    }
    assert!(generate(&["--completions", "bash"]).contains("complete -o nospace -o bashdefault"));
}

#[test]
fn shells_accept_their_scripts() {
    // zsh and fish can check syntax without running anything; bash is exercised for real in
    // tests/completion.rs. Skipped shells are named, not silent.
    for (shell, file, check) in [
        ("zsh", "completions/_knock", "-n"),
        ("fish", "completions/knock.fish", "--no-execute"),
        ("bash", "completions/knock.bash", "-n"),
    ] {
        let path = repo_root().join(file);
        match Command::new(shell).arg(check).arg(&path).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell} refuses {file}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("not checking {file}: cannot run {shell}: {e}"),
        }
    }
}
