//! Completion for real: bash sources the checked-in completions/knock.bash, and its completion
//! function runs with COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set as bash sets them on TAB;
//! fish sources completions/knock.fish and answers `complete -C`. The scripts call `knock` by
//! name, so the freshly built binary's directory goes first on PATH; the config lives in a temp
//! dir (XDG_CONFIG_HOME or KNOCK_CONFIG).

use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
[profiles.home]
host = "198.18.0.2"
hits = 3
[profiles.home.sequences]
wake-laptop = "4,2012,3"
enable-vpn = { sequence = "2,1,2010", delay_ms = 500 }

[profiles.office]
host = "fd00:18::2"
[profiles.office.sequences]
door = "7000,8000:udp,9000"
"#;

/// A home directory with the config above in its XDG config dir.
fn home_with_config(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp home");
    let dir = home.path().join("config/knock");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("config.toml"), config).expect("write config");
    home
}

/// Completes `line` (the cursor at its end) in bash, returns (COMPREPLY, bash's stderr).
fn complete(home: &Path, line: &str, extra_env: &[(&str, &str)]) -> (Vec<String>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions/knock.bash");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_knock"))
        .parent()
        .expect("binary in a directory");
    // Split like bash does for this simple input; a trailing space means an empty current word.
    let mut words: Vec<&str> = line.split_whitespace().collect();
    if line.ends_with(' ') {
        words.push("");
    }
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        r#"source "$1" || exit 99
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
_clap_complete_knock knock '{cur}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" "),
        cur = words[cword],
    );
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(program)
        .arg("bash")
        .arg(&script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .envs(extra_env.iter().copied())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (reply, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn first_word_completes_profile_names() {
    let home = home_with_config(CONFIG);
    let (reply, _) = complete(home.path(), "knock ", &[]);
    assert_eq!(reply, ["home", "office"]);
    let (reply, _) = complete(home.path(), "knock of", &[]);
    assert_eq!(reply, ["office"]);
}

#[test]
fn second_word_completes_only_that_profiles_sequences() {
    let home = home_with_config(CONFIG);
    let (reply, _) = complete(home.path(), "knock home ", &[]);
    assert_eq!(reply, ["enable-vpn", "wake-laptop"]);
    let (reply, _) = complete(home.path(), "knock office ", &[]);
    assert_eq!(reply, ["door"]);
    let (reply, _) = complete(home.path(), "knock -v home w", &[]);
    assert_eq!(reply, ["wake-laptop"]);
}

#[test]
fn flags_complete_as_usual() {
    let home = home_with_config(CONFIG);
    let (reply, _) = complete(home.path(), "knock --li", &[]);
    assert_eq!(reply, ["--list"]);
    let (reply, _) = complete(home.path(), "knock --completions ", &[]);
    assert_eq!(reply, ["bash", "zsh", "fish", "powershell", "elvish"]);
}

#[test]
fn an_explicit_config_is_the_one_read() {
    let home = home_with_config(CONFIG);
    let other = home.path().join("other.toml");
    std::fs::write(
        &other,
        "[profiles.lab]\nhost = \"h\"\n[profiles.lab.sequences]\nopen = \"1\"\n",
    )
    .expect("write other config");
    let other = other.to_str().expect("utf-8 temp path");
    let (reply, _) = complete(home.path(), &format!("knock --config {other} "), &[]);
    assert_eq!(reply, ["lab"]);
    let (reply, _) = complete(home.path(), "knock lab ", &[("KNOCK_CONFIG", other)]);
    assert_eq!(reply, ["open"]);
}

#[test]
fn missing_or_broken_config_completes_no_names_and_prints_nothing() {
    for config in [None, Some("[profiles.home\nthis is not toml")] {
        let home = match config {
            Some(text) => home_with_config(text),
            None => tempfile::tempdir().expect("temp home"),
        };
        for line in ["knock ", "knock home "] {
            let (reply, stderr) = complete(home.path(), line, &[]);
            assert!(
                !reply.iter().any(|r| !r.starts_with('-')),
                "{line:?} with config {config:?} offered {reply:?}"
            );
            assert_eq!(stderr, "", "{line:?} with config {config:?}");
        }
    }
}

#[test]
fn fish_completes_profiles_and_sequences_too() {
    let home = home_with_config(CONFIG);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions/knock.fish");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_knock"))
        .parent()
        .expect("binary in a directory");
    let fish = |line: &str| -> Vec<String> {
        let out = Command::new("fish")
            .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
            .arg(&script)
            .arg(line)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run fish (scripts/setup-debian installs it): {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each line is `value<TAB>help`.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(fish("knock "), ["home", "office"]);
    assert_eq!(fish("knock home "), ["enable-vpn", "wake-laptop"]);
}

/// Runs `_knock` twice the way compinit does on TAB when completions/_knock sits in `fpath`
/// (autoloaded, not sourced), with zsh's `_describe` replaced by a printer. Returns what
/// each call offered, one line per call.
fn zsh_autoloaded(home: &Path) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_knock"))
        .parent()
        .expect("binary in a directory");
    let program = r#"fpath=("$1" $fpath)
autoload -Uz compinit && compinit -D -u
_describe() { shift 2; print -rn -- "${(P)1} " }
words=(knock ''); CURRENT=2
_knock; print; _knock; print
"#;
    let out = Command::new("zsh")
        .arg("-fc")
        .arg(program)
        .arg("zsh")
        .arg(&dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .expect("run zsh (scripts/setup-debian installs it)");
    assert!(
        out.status.success(),
        "zsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn zsh_completes_on_the_first_tab_when_autoloaded_from_fpath() {
    let home = home_with_config(CONFIG);
    let calls = zsh_autoloaded(home.path());
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert!(
            call.contains("home:") && call.contains("office:"),
            "each TAB offers the profiles: {calls:?}"
        );
    }
}
