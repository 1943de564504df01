//! The checked-in man page (man/knock-server.8) and completion scripts (completions/) are
//! exactly what the binary prints, so they cannot drift from the command line; and each script
//! loads in its shell and offers the subcommands. Regenerate them with
//! `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-server --test assets` and commit the result.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each file and the arguments that print it.
const ASSETS: [(&str, &[&str]); 4] = [
    ("man/knock-server.8", &["--man"]),
    ("completions/knock-server.bash", &["--completions", "bash"]),
    ("completions/_knock-server", &["--completions", "zsh"]),
    ("completions/knock-server.fish", &["--completions", "fish"]),
];

const SUBCOMMANDS: [&str; 4] = ["status", "close", "keygen", "pair"];

fn repo_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file)
}

/// What `knock-server ARGS` prints, with the environment cleared.
fn generate(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_knock-server"))
        .args(args)
        .env_clear()
        .output()
        .expect("run knock-server");
    assert!(
        out.status.success(),
        "knock-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn checked_in_assets_are_current() {
    let update = std::env::var_os("KNOCK_UPDATE_ASSETS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, args) in ASSETS {
        let path = repo_path(file);
        let want = generate(args);
        if std::fs::read(&path).is_ok_and(|have| have == want) {
            continue;
        }
        if update {
            std::fs::write(&path, &want).expect("write asset");
        } else {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what knock-server prints; regenerate with \
         `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-server --test assets` and commit them"
    );
}

/// Runs `shell ARGS` (scripts/setup-debian installs the shells), returns its stdout.
fn shell(shell: &str, args: &[&str]) -> String {
    let out = Command::new(shell)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} (scripts/setup-debian installs it): {e}"));
    assert!(
        out.status.success(),
        "{shell} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The first word of each line: a candidate, without fish's description.
fn candidates(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect()
}

#[test]
fn bash_script_registers_and_offers_the_subcommands() {
    // What bash sets on TAB after `knock-server `, then the function `complete -p` names.
    let program = r#"source "$1" || exit 99
spec=$(complete -p knock-server) || exit 98
COMP_WORDS=(knock-server '') COMP_CWORD=1 COMP_LINE='knock-server ' COMP_POINT=13
fn=${spec##*-F }; fn=${fn%% *}
"$fn" knock-server '' knock-server
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let script = repo_path("completions/knock-server.bash");
    let out = shell("bash", &["-c", program, "bash", script.to_str().unwrap()]);
    let got = candidates(&out);
    for sub in SUBCOMMANDS.iter().chain(&["--config", "--instance"]) {
        assert!(got.contains(sub), "bash does not offer {sub}: {got:?}");
    }
}

#[test]
fn fish_script_offers_the_subcommands_and_their_flags() {
    let script = repo_path("completions/knock-server.fish");
    let script = script.to_str().unwrap();
    shell("fish", &["--no-execute", script]);
    let out = shell(
        "fish",
        &[
            "-c",
            "source $argv[1]; complete -C 'knock-server '; complete -C 'knock-server close --'",
            script,
        ],
    );
    let got = candidates(&out);
    for want in SUBCOMMANDS.iter().chain(&["--all", "--runtime-dir"]) {
        assert!(got.contains(want), "fish does not offer {want}: {got:?}");
    }
}

#[test]
fn zsh_accepts_its_script_and_it_names_the_subcommands() {
    // zsh completes only inside its line editor (scripts/test-completions drives it in tmux);
    // here: the syntax, and that the function is the one compinit autoloads for knock-server.
    let script = repo_path("completions/_knock-server");
    shell("zsh", &["-n", script.to_str().unwrap()]);
    let text = std::fs::read_to_string(&script).expect("read _knock-server");
    assert!(text.starts_with("#compdef knock-server\n"), "{text:.40}");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("'{sub}:")),
            "_knock-server lacks {sub}"
        );
    }
}
