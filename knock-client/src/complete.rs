//! Shell completion that knows the user's profiles.
//!
//! clap_complete's dynamic completion: the script a shell loads (`knock --completions bash`)
//! calls `COMPLETE=bash knock -- WORDS...` on every TAB, and [`handle_request`] answers from
//! the clap definition plus two completers: [`profiles`] for the first word and [`sequences`]
//! for the word after a profile. Both read the config at that moment, so a new profile
//! completes at once; a missing or broken config completes nothing and prints nothing.
//!
//! The completers only get the word being completed, so the words before it (which profile,
//! which `--config`) are read back from the completion request's own arguments ([`Request`]).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, CompleteEnv, Elvish, EnvCompleter, Fish, Powershell, Shells, Zsh};

use crate::cli::{self, Shell};
use crate::profiles::{self, Config, Location, Origin};

/// The variable that makes a run of knock a completion request (clap_complete's default).
const VAR: &str = "COMPLETE";
/// The command the scripts complete, and call back, by name: found on PATH once installed.
const BIN: &str = "knock";

/// The shells we register for: clap_complete's, with zsh's script made autoloadable.
const SHELLS: Shells<'static> = Shells(&[&Bash, &Elvish, &Fish, &Powershell, &ZshAutoload]);

/// Answers a completion request and exits, if this run is one; returns otherwise.
/// Must run before anything is printed.
pub fn handle_request() {
    // The common case, a knock, pays one environment lookup: clap_complete would first
    // collect the arguments and ask for the working directory.
    if std::env::var_os(VAR).is_none() {
        return;
    }
    CompleteEnv::with_factory(completion_command)
        .var(VAR)
        .bin(BIN)
        .completer(BIN)
        .shells(SHELLS)
        .complete();
}

/// clap_complete's zsh script, which works when sourced, plus the line that makes it work
/// from `fpath` too. compinit autoloads `_knock` on the first TAB and runs the file as that
/// function; clap's script only defines its completer and registers it with `compdef`
/// there, so the first TAB of every shell completed nothing. When `funcstack[1]` is
/// `_knock` (autoloaded, not sourced) the completer also runs at once.
struct ZshAutoload;

impl EnvCompleter for ZshAutoload {
    fn name(&self) -> &'static str {
        Zsh.name()
    }

    fn is(&self, name: &str) -> bool {
        Zsh.is(name)
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn io::Write,
    ) -> io::Result<()> {
        Zsh.write_registration(var, name, bin, completer, buf)?;
        let name = name.replace('-', "_");
        writeln!(
            buf,
            "if [[ ${{funcstack[1]}} == _{name} ]]; then\n    _clap_dynamic_completer_{name} \"$@\"\nfi"
        )
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn io::Write,
    ) -> io::Result<()> {
        Zsh.write_complete(cmd, args, current_dir, buf)
    }
}

/// Writes the script that registers completion for `shell`: exactly what
/// `COMPLETE=SHELL knock` prints.
pub fn write_script(shell: Shell, out: &mut dyn io::Write) -> io::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &ZshAutoload,
        Shell::Fish => &Fish,
        Shell::Powershell => &Powershell,
        Shell::Elvish => &Elvish,
    };
    completer.write_registration(VAR, cli::command().get_name(), BIN, BIN, out)
}

/// Candidates for the first word: the profile names, with their host as help.
pub fn profiles() -> Vec<CompletionCandidate> {
    Request::get().map_or_else(Vec::new, Request::profiles)
}

/// Candidates for the word after a profile name: that profile's sequence names. Nothing after
/// a host (ports cannot be guessed) or past the first sequence word.
pub fn sequences(current: &OsStr) -> Vec<CompletionCandidate> {
    Request::get().map_or_else(Vec::new, |r| r.sequences(current))
}

/// The command line being completed, as far as the completers care.
#[derive(Debug)]
struct Request {
    /// The word under the cursor.
    current: OsString,
    /// `--config FILE` (or KNOCK_CONFIG) before the cursor.
    config: Option<PathBuf>,
    /// The first positional word before the cursor.
    target: Option<String>,
    /// How many words follow it before the cursor.
    rest_before: usize,
    /// The config, read at most once per request.
    loaded: OnceLock<Option<Config>>,
}

impl Request {
    /// The request of this process, if it is one (computed once).
    fn get() -> Option<&'static Request> {
        static REQUEST: OnceLock<Option<Request>> = OnceLock::new();
        REQUEST
            .get_or_init(|| {
                Request::parse(
                    std::env::args_os(),
                    std::env::var("_CLAP_COMPLETE_INDEX").ok(),
                )
            })
            .as_ref()
    }

    /// From `knock -- knock WORDS...` and the index of the word under the cursor (bash, zsh and
    /// elvish pass it in `_CLAP_COMPLETE_INDEX`; fish and PowerShell put the cursor word last).
    fn parse(args: impl IntoIterator<Item = OsString>, index: Option<String>) -> Option<Request> {
        let words: Vec<OsString> = args.into_iter().skip_while(|a| a != "--").skip(1).collect();
        if words.is_empty() {
            return None;
        }
        let index = index
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(words.len() - 1);
        let before = &words[..index.min(words.len())];
        let current = words.get(index).cloned().unwrap_or_default();
        let matches = cli::command()
            .ignore_errors(true)
            .arg_required_else_help(false)
            .try_get_matches_from(before)
            .ok()?;
        Some(Request {
            current,
            config: matches.get_one::<PathBuf>("config").cloned(),
            target: matches.get_one::<String>("target").cloned(),
            rest_before: matches.get_many::<String>("rest").map_or(0, |r| r.len()),
            loaded: OnceLock::new(),
        })
    }

    /// The config this command line would use, if it is there and valid.
    fn config(&self) -> Option<&Config> {
        self.loaded
            .get_or_init(|| {
                let explicit = self.config.clone().map(|p| (p, Origin::Flag));
                let location = Location::find(explicit).ok()?;
                profiles::load(&location).ok().flatten()
            })
            .as_ref()
    }

    fn profiles(&self) -> Vec<CompletionCandidate> {
        let Some(config) = self.config() else {
            return Vec::new();
        };
        config
            .profiles
            .iter()
            .map(|(name, p)| CompletionCandidate::new(name).help(Some(p.host.clone().into())))
            .collect()
    }

    fn sequences(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        let (Some(target), 0) = (&self.target, self.rest_before) else {
            return Vec::new();
        };
        let Some(profile) = self.config().and_then(|c| c.profiles.get(target)) else {
            return Vec::new();
        };
        let current = current.to_string_lossy();
        profile
            .sequences
            .iter()
            .filter(|(name, _)| name.starts_with(current.as_ref()))
            .map(|(name, s)| CompletionCandidate::new(name).help(Some(s.written.clone().into())))
            .collect()
    }

    /// Whether the word under the cursor has candidates of ours (profiles or sequences).
    fn has_values(&self) -> bool {
        if self.current.to_string_lossy().starts_with('-') {
            return false;
        }
        match self.target {
            None => !self.profiles().is_empty(),
            Some(_) => !self.sequences(&self.current).is_empty(),
        }
    }
}

/// The command line definition for answering completions. Where we have profiles or sequences
/// to offer, flags are hidden (clap then leaves them out), so `knock home <TAB>` lists that
/// profile's sequences and not forty flag spellings; typing `-` brings the flags back, and so
/// does a word with nothing else to offer.
fn completion_command() -> clap::Command {
    let mut cmd = cli::command();
    if !Request::get().is_some_and(Request::has_values) {
        return cmd;
    }
    // Build first so that the generated --help and --version exist and get hidden too.
    cmd.build();
    cmd.mut_args(|a| if a.is_positional() { a } else { a.hide(true) })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn request(words: &[&str], index: Option<usize>) -> Request {
        let args = ["knock", "--"].iter().chain(words).map(OsString::from);
        Request::parse(args, index.map(|i| i.to_string())).expect("a request")
    }

    #[test]
    fn reads_the_words_before_the_cursor() {
        let r = request(&["knock", "home", ""], Some(2));
        assert_eq!((r.target.as_deref(), r.rest_before), (Some("home"), 0));
        assert_eq!(r.current, "");
        let r = request(
            &["knock", "-c", "/x.toml", "-v", "home", "wake", "z"],
            Some(5),
        );
        assert_eq!(r.config, Some(PathBuf::from("/x.toml")));
        assert_eq!((r.target.as_deref(), r.rest_before), (Some("home"), 0));
        assert_eq!(r.current, "wake");
        // No index: the cursor word is the last (fish, PowerShell).
        let r = request(&["knock", "home", "wake-laptop", ""], None);
        assert_eq!(r.rest_before, 1);
        // zsh may leave the cursor past the last word.
        let r = request(&["knock", "home"], Some(2));
        assert_eq!((r.target.as_deref(), r.current.len()), (Some("home"), 0));
    }

    #[test]
    fn not_a_request_without_words() {
        assert!(Request::parse(["knock"].map(OsString::from), None).is_none());
    }

    #[test]
    fn scripts_name_the_binary() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Powershell,
            Shell::Elvish,
        ] {
            let mut out = Vec::new();
            write_script(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("knock"), "{shell:?}: {text}");
            assert!(text.contains("COMPLETE"), "{shell:?}: {text}");
        }
    }
}
