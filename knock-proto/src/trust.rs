//! May another user change (or read) this file? One answer for every file knock trusts: the
//! keys of rotating doors (server and client), the client's profiles, the daemon's state.
//!
//! The rules are OpenSSH's (`safe_path`, `StrictModes`, and what ssh demands of
//! `~/.ssh/config`): the file and every directory above it, up to `/`, must belong to root or
//! to the expected owner (the process's effective user unless said otherwise), and none of
//! them may be writable by group or others; a sticky directory (`/tmp`, mode 1777) is fine
//! above the file, as nobody can rename or remove what others put in it. A symbolic link on
//! the way must belong to root or the owner too, and then the path it leads to is judged the
//! same way. The file itself must be a regular file and, by [`Access`], let nobody but its
//! owner write it ([`Access::Config`]) or read or write it ([`Access::Secret`]).
//!
//! [`decide`] is the decision, on facts given as values (an owner and a mode per path);
//! [`check`] and [`check_with_owner`] gather those facts with `lstat`/`stat` (never reading
//! the file) and are all the I/O there is.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

/// `S_IFMT` and the file types of `st_mode`.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// The sticky bit: in such a directory only an entry's owner may rename or remove it.
const S_ISVTX: u32 = 0o1000;

/// What the file holds, and so who else may touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A secret (a key, the daemon's state): no group or other access at all, as ssh demands
    /// of a private key. The fix is `chmod 600`.
    Secret,
    /// Settings (the client's profiles): others may read it, but not write it, as ssh demands
    /// of `~/.ssh/config`. The fix is `chmod go-w`.
    Config,
}

/// What `lstat` (or `stat`) says of one path on the way to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The path (for the file itself: as the caller wrote it).
    pub path: PathBuf,
    /// Its owner, `st_uid`.
    pub uid: u32,
    /// Its type and permission bits, `st_mode`.
    pub mode: u32,
    /// Whether this is the file itself rather than a directory above it. A symbolic link is
    /// only ever judged as a link, whichever it is.
    pub target: bool,
}

/// A user, for messages: the uid, and the name when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The uid.
    pub uid: u32,
    /// The login name, from `/etc/passwd` (none for users it does not list).
    pub name: Option<String>,
}

impl User {
    /// The user with this uid, its name not looked up.
    pub fn uid(uid: u32) -> User {
        User { uid, name: None }
    }

    /// How `chown` is told of this user: the name, else the number.
    fn arg(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} (uid {})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// Where on the way to the file a wrong owner was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The file itself.
    File,
    /// A directory above it.
    Dir,
    /// A symbolic link on the way (or the file's own name, when it is a link).
    Link,
}

/// Why a file cannot be trusted; the message names the path, what was found, and the command
/// that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// The file, a directory above it or a link on the way belongs to someone else: neither
    /// root nor the expected owner.
    Owner {
        /// The path with the wrong owner.
        path: PathBuf,
        /// What that path is to the file.
        role: Role,
        /// The file checked.
        of: PathBuf,
        /// Its owner.
        found: User,
        /// Who should own it (or root).
        owner: User,
    },
    /// The file's own permission bits let others in.
    FileMode {
        /// The file.
        path: PathBuf,
        /// Its `st_mode`.
        mode: u32,
        /// The rules it broke.
        access: Access,
    },
    /// A directory above the file is writable by group or others, and not sticky: they can
    /// replace what is in it.
    DirMode {
        /// The directory.
        path: PathBuf,
        /// The file checked.
        of: PathBuf,
        /// Its `st_mode`.
        mode: u32,
    },
    /// The file is a directory, a device, a FIFO or a socket.
    NotAFile {
        /// The path.
        path: PathBuf,
        /// Its `st_mode`.
        mode: u32,
    },
    /// `lstat` or `stat` failed on the way.
    Unreadable {
        /// The path it failed on.
        path: PathBuf,
        /// Why, as `io_message` says it.
        error: String,
    },
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::Owner {
                path,
                role,
                of,
                found,
                owner,
            } => {
                let (p, of) = (path.display(), of.display());
                match role {
                    Role::File => write!(f, "{p} is owned by {found}")?,
                    Role::Dir => write!(f, "{p}, a directory above {of}, is owned by {found}")?,
                    Role::Link => write!(f, "{p}, a symbolic link to {of}, is owned by {found}")?,
                }
                if owner.uid == 0 {
                    f.write_str(", not by root")?;
                } else {
                    write!(f, ", not by {owner} or root")?;
                }
                let (can, chown) = match role {
                    Role::File => ("change it".to_owned(), "chown"),
                    Role::Dir => (format!("replace {of}"), "chown"),
                    Role::Link => ("point it elsewhere".to_owned(), "chown -h"),
                };
                write!(
                    f,
                    ": that user can {can}; run `{chown} {} {p}`",
                    owner.arg()
                )
            }
            Distrust::FileMode { path, mode, access } => {
                let p = path.display();
                let mode = mode & 0o7777;
                match access {
                    Access::Secret => write!(
                        f,
                        "{p} is mode {mode:04o}: anyone but its owner can read or write it; \
                         run `chmod 600 {p}`"
                    ),
                    Access::Config => write!(
                        f,
                        "{p} is mode {mode:04o}: anyone but its owner can write it; \
                         run `chmod go-w {p}`"
                    ),
                }
            }
            Distrust::DirMode { path, of, mode } => write!(
                f,
                "{p}, a directory above {of}, is mode {mode:04o}: anyone but its owner can \
                 replace what is in it, and so {of}; run `chmod go-w {p}`",
                p = path.display(),
                of = of.display(),
                mode = mode & 0o7777,
            ),
            Distrust::NotAFile { path, mode } => {
                let kind = match mode & S_IFMT {
                    S_IFDIR => "a directory",
                    0o020_000 => "a character device",
                    0o060_000 => "a block device",
                    0o010_000 => "a FIFO",
                    0o140_000 => "a socket",
                    _ => "not a regular file",
                };
                let p = path.display();
                if kind.starts_with("not") {
                    write!(f, "{p} is {kind}")
                } else {
                    write!(f, "{p} is {kind}, not a regular file")
                }
            }
            Distrust::Unreadable { path, error } => {
                write!(f, "cannot check who may change {}: {error}", path.display())
            }
        }
    }
}

impl Distrust {
    /// Whether others may already have read the file: what it holds is to be taken as known
    /// (a key: make a new one). Only a file's own owner and mode say so.
    pub fn exposed(&self) -> bool {
        match self {
            Distrust::Owner { role, .. } => *role == Role::File,
            Distrust::FileMode { mode, .. } => mode & 0o044 != 0,
            _ => false,
        }
    }
}

/// The decision on the facts about `of`: the file (`target`) and every directory above it,
/// and any link on the way, in the order [`check_with_owner`] gathers them (the file first,
/// then up to `/`). The first problem found is the answer. Names in messages are not looked
/// up here: users are given by uid.
pub fn decide(of: &Path, facts: &[Fact], access: Access, owner: u32) -> Result<(), Distrust> {
    facts
        .iter()
        .try_for_each(|fact| judge(of, fact, access, owner))
}

/// The decision on one fact of [`decide`].
fn judge(of: &Path, fact: &Fact, access: Access, owner: u32) -> Result<(), Distrust> {
    let kind = fact.mode & S_IFMT;
    let role = match (kind, fact.target) {
        (S_IFLNK, _) => Role::Link,
        (_, true) => Role::File,
        (_, false) => Role::Dir,
    };
    if fact.uid != 0 && fact.uid != owner {
        return Err(Distrust::Owner {
            path: fact.path.clone(),
            role,
            of: of.to_owned(),
            found: User::uid(fact.uid),
            owner: User::uid(owner),
        });
    }
    match role {
        // A link's own mode means nothing; where it leads is judged on its own.
        Role::Link => Ok(()),
        Role::File if kind != S_IFREG => Err(Distrust::NotAFile {
            path: fact.path.clone(),
            mode: fact.mode,
        }),
        Role::File => {
            let others = match access {
                Access::Secret => 0o077,
                Access::Config => 0o022,
            };
            if fact.mode & others == 0 {
                Ok(())
            } else {
                Err(Distrust::FileMode {
                    path: fact.path.clone(),
                    mode: fact.mode,
                    access,
                })
            }
        }
        Role::Dir if fact.mode & 0o022 != 0 && fact.mode & S_ISVTX == 0 => Err(Distrust::DirMode {
            path: fact.path.clone(),
            of: of.to_owned(),
            mode: fact.mode,
        }),
        Role::Dir => Ok(()),
    }
}

/// [`check_with_owner`] for the process's own effective user.
pub fn check(path: &Path, access: Access) -> Result<(), Distrust> {
    check_with_owner(path, access, rustix::process::geteuid().as_raw())
}

/// Whether `path` may be trusted to hold what `access` says, with `owner` (a uid) as the user
/// who should own it: `lstat` of the path as written and of each directory above it (made
/// absolute from the current directory), then, if a symbolic link or `..` was on the way,
/// `stat` of the real path and each directory above that; [`decide`] judges. Only error
/// messages read `/etc/passwd`, for the users' names.
pub fn check_with_owner(path: &Path, access: Access, owner: u32) -> Result<(), Distrust> {
    decide(path, &facts(path)?, access, owner).map_err(named)
}

/// The facts about `path` and the directories above it.
fn facts(path: &Path) -> Result<Vec<Fact>, Distrust> {
    let unreadable = |p: &Path, e: io::Error| Distrust::Unreadable {
        path: p.to_owned(),
        error: crate::config::io_message(&e),
    };
    let absolute = std::path::absolute(path).map_err(|e| unreadable(path, e))?;
    let mut indirect = absolute
        .components()
        .any(|c| matches!(c, Component::ParentDir));
    let mut facts = Vec::new();
    for (i, p) in absolute.ancestors().enumerate() {
        let meta = fs::symlink_metadata(p).map_err(|e| unreadable(p, e))?;
        indirect |= meta.file_type().is_symlink();
        facts.push(Fact {
            path: if i == 0 {
                path.to_owned()
            } else {
                p.to_owned()
            },
            uid: meta.uid(),
            mode: meta.mode(),
            target: i == 0,
        });
    }
    if indirect {
        let real = fs::canonicalize(&absolute).map_err(|e| unreadable(path, e))?;
        for (i, p) in real.ancestors().enumerate() {
            let meta = fs::metadata(p).map_err(|e| unreadable(p, e))?;
            facts.push(Fact {
                path: p.to_owned(),
                uid: meta.uid(),
                mode: meta.mode(),
                target: i == 0,
            });
        }
    }
    Ok(facts)
}

/// The users of an [`Distrust::Owner`] with their names, from `/etc/passwd`.
fn named(distrust: Distrust) -> Distrust {
    match distrust {
        Distrust::Owner {
            path,
            role,
            of,
            found,
            owner,
        } => {
            let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
            let name = |user: User| User {
                name: user_name(&passwd, user.uid),
                ..user
            };
            Distrust::Owner {
                path,
                role,
                of,
                found: name(found),
                owner: name(owner),
            }
        }
        other => other,
    }
}

/// The login name of `uid` in the text of `/etc/passwd` (`name:x:uid:gid:...`).
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const ME: u32 = 1000;
    const OTHER: u32 = 65534;

    fn fact(path: &str, uid: u32, mode: u32, target: bool) -> Fact {
        Fact {
            path: PathBuf::from(path),
            uid,
            mode,
            target,
        }
    }

    /// `/home/me/.config/knock/config.toml` and its directories, the file with this owner and
    /// mode, each directory as the caller says (the rest are root's or mine, 0755).
    fn chain(file_uid: u32, file_mode: u32, dirs: &[(&str, u32, u32)]) -> Vec<Fact> {
        let mut facts = vec![fact("config.toml", file_uid, 0o100_000 | file_mode, true)];
        for (path, uid, mode) in [
            ("/home/me/.config/knock", ME, 0o755),
            ("/home/me/.config", ME, 0o700),
            ("/home/me", ME, 0o755),
            ("/home", 0, 0o755),
            ("/", 0, 0o755),
        ] {
            let (uid, mode) = dirs
                .iter()
                .find(|(p, ..)| *p == path)
                .map_or((uid, mode), |&(_, u, m)| (u, m));
            facts.push(fact(path, uid, 0o040_000 | mode, false));
        }
        facts
    }

    fn decide_config(facts: &[Fact]) -> Result<(), Distrust> {
        decide(Path::new("config.toml"), facts, Access::Config, ME)
    }

    #[test]
    fn mine_or_roots_without_write_for_others_is_trusted() {
        assert_eq!(decide_config(&chain(ME, 0o644, &[])), Ok(()));
        assert_eq!(decide_config(&chain(0, 0o644, &[])), Ok(()));
        let secret = chain(ME, 0o600, &[]);
        assert_eq!(
            decide(Path::new("config.toml"), &secret, Access::Secret, ME),
            Ok(())
        );
        let read_only = chain(ME, 0o400, &[]);
        assert_eq!(
            decide(Path::new("config.toml"), &read_only, Access::Secret, ME),
            Ok(())
        );
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused_whatever_its_mode() {
        let e = decide_config(&chain(OTHER, 0o600, &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.toml is owned by uid 65534, not by uid 1000 or root: that user can change \
             it; run `chown 1000 config.toml`"
        );
        assert!(e.exposed());
        // Root checking a file of its own.
        let e = decide(
            Path::new("config.toml"),
            &chain(OTHER, 0o600, &[]),
            Access::Secret,
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not by root: that user"), "{e}");
    }

    #[test]
    fn a_group_or_other_writable_file_is_refused() {
        for mode in [0o664, 0o646, 0o666] {
            let e = decide_config(&chain(ME, mode, &[])).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "config.toml is mode {mode:04o}: anyone but its owner can write it; \
                     run `chmod go-w config.toml`"
                )
            );
        }
        // Readable by others is fine for settings, not for secrets.
        assert_eq!(decide_config(&chain(ME, 0o644, &[])), Ok(()));
        let e = decide(
            Path::new("/k"),
            &[
                fact("/k", ME, 0o100_640, true),
                fact("/", 0, 0o40_755, false),
            ],
            Access::Secret,
            ME,
        )
        .unwrap_err();
        // The wording key files always had.
        assert_eq!(
            e.to_string(),
            "/k is mode 0640: anyone but its owner can read or write it; run `chmod 600 /k`"
        );
        assert!(e.exposed());
        let e = decide(
            Path::new("k"),
            &[fact("k", ME, 0o100_602, true)],
            Access::Secret,
            ME,
        )
        .unwrap_err();
        assert!(!e.exposed(), "written, not read: {e}");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_above_the_file() {
        let e = decide_config(&chain(ME, 0o644, &[("/home/me", ME, 0o777)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/me, a directory above config.toml, is mode 0777: anyone but its owner can \
             replace what is in it, and so config.toml; run `chmod go-w /home/me`"
        );
        assert!(!e.exposed());
        let group = chain(ME, 0o644, &[("/home/me/.config/knock", ME, 0o775)]);
        assert!(matches!(
            decide_config(&group),
            Err(Distrust::DirMode { mode: 0o40_775, .. })
        ));
        // Even root's.
        assert!(decide_config(&chain(ME, 0o644, &[("/home", 0, 0o777)])).is_err());
    }

    #[test]
    fn a_directory_of_another_user_is_refused_above_the_file() {
        let e = decide_config(&chain(ME, 0o644, &[("/home/me", OTHER, 0o755)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/me, a directory above config.toml, is owned by uid 65534, not by uid 1000 \
             or root: that user can replace config.toml; run `chown 1000 /home/me`"
        );
    }

    #[test]
    fn a_sticky_directory_is_fine_above_the_file() {
        assert_eq!(
            decide_config(&chain(ME, 0o644, &[("/home", 0, 0o1777)])),
            Ok(())
        );
        let tmp = [
            fact("/tmp/k", ME, 0o100_600, true),
            fact("/tmp", 0, 0o41_777, false),
            fact("/", 0, 0o40_755, false),
        ];
        assert_eq!(
            decide(Path::new("/tmp/k"), &tmp, Access::Secret, ME),
            Ok(())
        );
        // But not as the file's owner's stand-in: a sticky directory of another user is not.
        let theirs = [
            fact("/tmp/x/k", ME, 0o100_600, true),
            fact("/tmp/x", OTHER, 0o41_777, false),
            fact("/tmp", 0, 0o41_777, false),
        ];
        assert!(decide(Path::new("/tmp/x/k"), &theirs, Access::Secret, ME).is_err());
    }

    #[test]
    fn root_owned_directories_are_fine_above_the_file() {
        let etc = [
            fact("/etc/knock/k.key", 0, 0o100_600, true),
            fact("/etc/knock", 0, 0o40_700, false),
            fact("/etc", 0, 0o40_755, false),
            fact("/", 0, 0o40_755, false),
        ];
        assert_eq!(
            decide(Path::new("/etc/knock/k.key"), &etc, Access::Secret, ME),
            Ok(())
        );
        assert_eq!(
            decide(Path::new("/etc/knock/k.key"), &etc, Access::Secret, 0),
            Ok(())
        );
    }

    #[test]
    fn links_on_the_way_are_judged_by_their_owner_only() {
        let mut facts = chain(ME, 0o644, &[]);
        facts[2] = fact("/home/me/.config", ME, 0o120_777, false);
        assert_eq!(decide_config(&facts), Ok(()));
        facts[2].uid = OTHER;
        let e = decide_config(&facts).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "/home/me/.config, a symbolic link to config.toml, is owned by uid 65534"
            ) && e
                .to_string()
                .ends_with("run `chown -h 1000 /home/me/.config`"),
            "{e}"
        );
        // The file's own name may be a link: then the real file is judged as the file.
        let mut facts = chain(ME, 0o644, &[]);
        facts[0].mode = 0o120_777;
        facts.push(fact("/srv/real.toml", ME, 0o100_666, true));
        assert!(matches!(
            decide_config(&facts),
            Err(Distrust::FileMode {
                mode: 0o100_666,
                ..
            })
        ));
    }

    #[test]
    fn only_regular_files_are_trusted() {
        let mut facts = chain(ME, 0o644, &[]);
        facts[0].mode = 0o040_755;
        assert_eq!(
            decide_config(&facts).unwrap_err().to_string(),
            "config.toml is a directory, not a regular file"
        );
    }

    #[test]
    fn names_come_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n";
        assert_eq!(user_name(passwd, 65534).as_deref(), Some("nobody"));
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 7), None);
    }

    /// A file of mine in a fresh directory (mode 0700, mine), in the system's temp directory.
    fn my_file(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_walk_finds_modes_on_the_way() {
        let (dir, path) = my_file(0o600);
        assert_eq!(check(&path, Access::Secret), Ok(()));
        chmod(&path, 0o644);
        assert_eq!(check(&path, Access::Config), Ok(()));
        let e = check(&path, Access::Secret).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "is mode 0644: anyone but its owner can read or write it; run `chmod 600 {}`",
                path.display()
            )),
            "{e}"
        );
        chmod(&path, 0o600);
        chmod(dir.path(), 0o777);
        let e = check(&path, Access::Secret).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(&format!("run `chmod go-w {}`", dir.path().display())),
            "{e}"
        );
        chmod(dir.path(), 0o1777);
        assert_eq!(check(&path, Access::Secret), Ok(()));
        chmod(dir.path(), 0o700);
    }

    #[test]
    fn the_walk_follows_links_and_judges_both_ways() {
        let (_dir, real) = my_file(0o600);
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("k");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(check(&link, Access::Secret), Ok(()));
        // The link's directory is open to all: the link can be swapped.
        chmod(links.path(), 0o777);
        assert!(matches!(
            check(&link, Access::Secret),
            Err(Distrust::DirMode { .. })
        ));
        chmod(links.path(), 0o700);
        // The real file is open to all.
        chmod(&real, 0o666);
        assert!(matches!(
            check(&link, Access::Secret),
            Err(Distrust::FileMode { .. })
        ));
        // `..` is resolved too.
        let sub = links.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let dotdot = sub.join("..").join("k");
        assert!(check(&dotdot, Access::Secret).is_err());
        chmod(&real, 0o600);
        assert_eq!(check(&dotdot, Access::Secret), Ok(()));
    }

    #[test]
    fn the_walk_finds_owners_on_the_way() {
        let (dir, path) = my_file(0o600);
        let me = rustix::process::geteuid().as_raw();
        if me == 0 {
            // Root may give the file away.
            std::os::unix::fs::chown(&path, Some(OTHER), None).unwrap();
            let e = check(&path, Access::Secret).unwrap_err();
            assert!(
                matches!(&e, Distrust::Owner { role: Role::File, found, .. } if found.uid == OTHER),
                "{e}"
            );
            assert!(
                e.to_string()
                    .ends_with(&format!("run `chown root {}`", path.display())),
                "{e}"
            );
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
            std::os::unix::fs::chown(dir.path(), Some(OTHER), None).unwrap();
            assert!(matches!(
                check(&path, Access::Secret),
                Err(Distrust::Owner {
                    role: Role::Dir,
                    ..
                })
            ));
        } else {
            // Anyone else checks for another owner: the file is then someone else's.
            let e = check_with_owner(&path, Access::Secret, me + 1).unwrap_err();
            assert!(
                matches!(&e, Distrust::Owner { role: Role::File, found, .. } if found.uid == me),
                "{e}"
            );
        }
    }

    #[test]
    fn a_missing_file_says_so() {
        let e = check(Path::new("/nonexistent/k"), Access::Secret).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot check who may change /nonexistent/k: No such file or directory"
        );
    }
}
