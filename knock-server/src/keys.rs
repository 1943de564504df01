//! Keys of rotating doors: `knock-server keygen` writes one, `knock-server pair` prints what a
//! client needs, and [`read_key_file`] reads one for the daemon and `--check`, refusing a file
//! that anyone but its owner can read or write, or that another user could replace (as ssh
//! refuses such private keys).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use knock_proto::auth::Key;
use knock_proto::auth::key::{KEY_BYTES, check_file};
use knock_proto::config::SequenceSource;

use crate::cli::{EXIT_USAGE, print_stdout};
use crate::files::{self, Access, OpenError};

/// `knock-server keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key: a new file, created mode 600 (an existing file is never
    /// overwritten); `-` or nothing: stdout
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `knock-server pair`.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// The rotating door (its name in the config)
    #[arg(value_name = "DOOR")]
    pub door: String,

    /// Config file [default: /etc/knock/server.toml if it exists, else /etc/knockd.conf]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the client will keep the key
    #[arg(
        long = "key-path",
        value_name = "PATH",
        default_value = "~/.config/knock/keys/DOOR.key"
    )]
    pub key_path: String,
}

/// Reads and checks a key file: `Err` is the whole message, naming the file. A file that anyone
/// but its owner can read or write, that belongs to another user than the daemon's (or root),
/// or that sits in a directory others can change, is refused with the fix
/// ([`knock_proto::auth::key::check_file`], the client's rules too).
pub fn read_key_file(path: &Path) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_file(path)?;
    std::io::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `knock-server keygen`: writes a new key.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let mut bytes = [0u8; KEY_BYTES];
    rand::fill(&mut bytes);
    let text = format!("{}\n", Key::from_bytes(bytes).to_text());
    let Some(path) = args.file.as_deref().filter(|p| *p != Path::new("-")) else {
        print_stdout(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    };
    // O_EXCL: never overwrite (nor follow a symlink planted where the key goes); the mode is
    // set at creation, so the key is never readable by others, not even for a moment.
    let file = files::open_file(path, Access::CreateNew, 0o600);
    let mut file = match file {
        Err(OpenError::Open(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists: keygen never overwrites a key; remove it first or choose another file",
            path.display()
        ),
        other => other.with_context(|| format!("cannot create {}", path.display()))?,
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote a new key to {} (mode 600): name it in a door's secret_file, then run \
         `knock-server pair DOOR` for the client",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `knock-server pair`: prints a rotating door's settings for a client's profile.
pub fn pair(args: &PairArgs) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| crate::cli::default_config(|p| p.exists()));
    let loaded = match crate::load::load(&config_path) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let config = &loaded.config;
    let Some(index) = config.doors.iter().position(|d| d.name == args.door) else {
        let names: Vec<&str> = config.doors.iter().map(|d| d.name.as_str()).collect();
        bail!(
            "{} has no door `{}` (its doors: {})",
            config_path.display(),
            args.door,
            names.join(", ")
        );
    };
    let (SequenceSource::Rotating(r), Some(key)) =
        (&config.doors[index].sequence, &loaded.keys[index])
    else {
        bail!(
            "door `{}` is not a rotating door: give it `secret_file = \"PATH\"` (a key from \
             `knock-server keygen PATH`) instead of a fixed sequence",
            args.door
        );
    };
    // The door's own `ports`, as `--check` and `status` show them: the other doors never
    // change a rotating door's knocks (the server resolves a clash on its side).
    let ports = &r.ports;
    let key_path = args.key_path.replace("DOOR", &args.door);
    let mut text = format!(
        "# Door `{door}`: send this over a channel you trust (it holds the key).\n\
         # 1. On the client, save the key, readable by you only:\n\
         #      (umask 077; mkdir -p \"$(dirname {key_path})\"; echo '{key}' > {key_path})\n\
         # 2. Add this line under [profiles.HOST.sequences] in knock's config.toml, then\n\
         #    `knock HOST {door}` knocks, and `knock --show HOST {door}` prints the current ports.\n",
        door = args.door,
        key = key.to_text(),
    );
    if let Some(older) = config.rotating_legacy_ports(index) {
        text.push_str(&format!(
            "#    A client paired by an earlier `knock-server pair` has ports = \"{older}\" in\n\
             #    this line: give it this one. The server accepts both for now, the older one\n\
             #    only as long as the other doors stay as they are.\n"
        ));
    }
    text.push_str(&format!(
        "{} = {{ secret_file = \"{key_path}\", knocks = {}, ports = \"{ports}\", step_seconds = {}, sealed = {}",
        toml_key(&args.door),
        r.knocks,
        r.step_seconds,
        r.sealed
    ));
    if r.bind_source {
        text.push_str(", bind_source = true");
    }
    text.push_str(" }\n");
    print_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A door name as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&path).unwrap_err();
        assert!(
            e.contains("is mode 0644") && e.contains(&format!("chmod 600 {}", path.display())),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&path).unwrap().parse::<Key>().is_ok());
    }

    #[test]
    fn a_key_file_in_a_directory_others_can_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let chmod_dir = |mode| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        for mode in [0o777, 0o770] {
            chmod_dir(mode);
            let e = read_key_file(&path).unwrap_err();
            assert!(
                e.contains(&format!("{}, a directory above", dir.path().display()))
                    && e.contains(&format!("is mode {mode:04o}"))
                    && e.ends_with(&format!("run `chmod go-w {}`", dir.path().display())),
                "{e}"
            );
        }
        // Sticky, as /tmp: nobody else can rename or remove the key.
        chmod_dir(0o1777);
        assert!(read_key_file(&path).is_ok());
        chmod_dir(0o700);
    }

    #[test]
    fn a_key_file_of_another_user_is_refused_even_when_mode_600() {
        if !knock_e2e::root_or_skip() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = read_key_file(&path).unwrap_err();
        assert!(
            e.contains(&format!("{} is owned by ", path.display()))
                && e.contains("(uid 65534), not by root")
                && e.contains(&format!("run `chown root {}`", path.display()))
                && e.contains("make a new key"),
            "{e}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert!(read_key_file(&path).is_ok());
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        let e = read_key_file(&path).unwrap_err();
        assert!(
            e.contains("a directory above")
                && e.ends_with(&format!("run `chown root {}`", dir.path().display())),
            "{e}"
        );
    }

    #[test]
    fn keygen_creates_an_owner_only_file_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.key");
        let args = KeygenArgs {
            file: Some(path.clone()),
        };
        keygen(&args).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let first = read_key_file(&path).unwrap();
        assert!(first.parse::<Key>().is_ok());
        let e = keygen(&args).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(read_key_file(&path).unwrap(), first);
    }

    #[test]
    fn door_names_become_toml_keys() {
        assert_eq!(toml_key("ssh-2"), "ssh-2");
        assert_eq!(toml_key("my door"), "\"my door\"");
    }
}
