//! The man page, knock(1): clap_mangen's sections from the clap definition, plus the ones a
//! man page needs and `--help` does not carry (examples, files, environment, exit status).

use std::io::{self, Write};

use crate::cli;
use crate::profiles::SAMPLE;
use crate::profiles::keys::{PROFILE_KEYS, ProfileKey, ROTATING_SEQUENCE_KEYS, SEQUENCE_KEYS};

/// Writes knock.1 in roff.
pub fn write(out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cli::command()).manual("User Commands");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    section(out, "EXAMPLES")?;
    for (command, what) in EXAMPLES {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(command), escape(what))?;
    }
    section(out, "FILES")?;
    // The rotating keys with their defaults, from their one declaration (the server's too).
    let rotating: String = knock_proto::config::rotating_keys::KEYS
        .iter()
        .filter_map(|k| Some(format!("\\fB{}\\fR ({}), ", k.name, k.default?)))
        .collect();
    let mut seen = Vec::new();
    let profile = key_list(&PROFILE_KEYS, &mut seen);
    let sequence = key_list(&SEQUENCE_KEYS, &mut seen);
    let rotating_own = key_list(&ROTATING_SEQUENCE_KEYS, &mut seen);
    writeln!(
        out,
        ".TP\n\\fI$XDG_CONFIG_HOME/knock/config.toml\\fR (Linux; \\fI~/.config/knock/config.toml\\fR \
         by default), \\fI~/Library/Application Support/knock/config.toml\\fR (macOS), \
         \\fI%APPDATA%\\eknock\\econfig\\econfig.toml\\fR (Windows)\n\
         The profiles, refused (exit 2) when another user than you or root owns the file or \
         can write it or a directory above it, as ssh refuses such a ~/.ssh/config. Each \
         \\fB[profiles.NAME]\\fR has {profile}. A sequence is a string in knockd syntax or a \
         table with {sequence}. A rotating sequence (a server door with secret_file) is a table \
         with \\fBsecret_file\\fR (the key file; ~/ is your home; refused unless only you can \
         read it), and as the server's door says: {rotating}{rotating_own}; knock-server pair \
         DOOR prints it. Sealed knocks need raw sockets (root, or setcap cap_net_raw+ep on \
         knock). For example:"
    )?;
    writeln!(out, ".PP\n.nf\n.RS 4")?;
    for line in SAMPLE.lines() {
        writeln!(out, "{}", escape(line))?;
    }
    writeln!(out, ".RE\n.fi")?;
    section(out, "ENVIRONMENT")?;
    for (name, what) in ENVIRONMENT {
        writeln!(out, ".TP\n\\fB{name}\\fR\n{}", escape(what))?;
    }
    section(out, "EXIT STATUS")?;
    writeln!(
        out,
        "0 when every hit was sent; 2 on any error (unknown profile or sequence, bad port or \
         protocol, unresolvable host, missing or invalid config, a hit that could not be sent)."
    )?;
    section(out, "SEE ALSO")?;
    writeln!(out, "\\fBknock-server\\fR(8), \\fBknockd\\fR(1)")?;
    man.render_version_section(out)
}

const EXAMPLES: [(&str, &str); 5] = [
    (
        "knock home wake-laptop",
        "Send the sequence wake-laptop of profile home to its host.",
    ),
    (
        "knock --hits 3 -v home wake-laptop",
        "Hit each port three times, as telnet to a filtered port does, printing each hit.",
    ),
    (
        "knock myserver.example.com 123:tcp 456:udp 789:tcp",
        "knockd style: TCP to 123, UDP to 456, TCP to 789.",
    ),
    (
        "knock -u -d 500 myserver.example.com 8284 4721 18592",
        "Every port over UDP, half a second apart.",
    ),
    (
        "knock --completions bash > ~/.local/share/bash-completion/completions/knock",
        "Install bash completion, which completes profile and sequence names.",
    ),
];

const ENVIRONMENT: [(&str, &str); 4] = [
    ("KNOCK_CONFIG", "The config file, as --config (which wins)."),
    (
        "XDG_CONFIG_HOME",
        "Where the default config directory is on Linux (default ~/.config).",
    ),
    (
        "KNOCK_LOG",
        "Diagnostics on stderr: a level (debug, trace) or TARGET=LEVEL directives, comma-separated.",
    ),
    (
        "KNOCK_TEST_CLOCK_SKEW",
        "For tests only: shift the clock rotating sequences are derived from by this many \
         seconds (e.g. -90), to show what a server logs for a client whose clock is off.",
    ),
];

/// "\fBa\fR (what a is), \fBb\fR and \fBc\fR": the keys with their docs, each key's doc
/// only the first time (`seen`) across the lists of a page.
fn key_list(keys: &[ProfileKey], seen: &mut Vec<&'static str>) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|k| {
            if seen.contains(&k.name) {
                format!("\\fB{}\\fR", k.name)
            } else {
                seen.push(k.name);
                format!("\\fB{}\\fR ({})", k.name, escape(&k.describe()))
            }
        })
        .collect();
    match items.as_slice() {
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => items.concat(),
    }
}

fn section(out: &mut dyn Write, title: &str) -> io::Result<()> {
    writeln!(out, ".SH {title}")
}

/// Text for roff: backslashes and hyphens escaped, no line starting a request.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_section() {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        for section in [
            ".TH knock 1",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH EXAMPLES",
            ".SH FILES",
            ".SH ENVIRONMENT",
            ".SH EXIT STATUS",
            "wake\\-laptop = \"4,2012,3\"",
        ] {
            assert!(page.contains(section), "missing {section:?}");
        }
    }

    #[test]
    fn escapes_roff() {
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
        assert_eq!(escape(".x"), "\\&.x");
    }
}
