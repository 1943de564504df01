//! `knock --proxy`: ssh knocks and connects in one step. A real OpenSSH server listens on the
//! server host behind knock-server's `open` door (nftables refuses port 22 until the knock);
//! a real ssh client on the client host reaches it with
//! `ProxyCommand knock home ssh --proxy %h:%p`. Keys are made for the test in its scratch
//! directory; host keys are neither checked nor remembered.

use std::path::{Path, PathBuf};

use knock_e2e::{Daemon, Link, SERVER_V4, Server, bin, scratch, write};

/// The door: a three-knock sequence (TCP, UDP, TCP) that opens ssh's port to the knocker.
const DOOR: &str = "[doors.ssh]\nsequence = \"7000,8000:udp,9000\"\n\
                    open = \"22/tcp\"\nopen_seconds = 60\n";

/// The client's profile for that door.
const PROFILE: &str = "[profiles.home]\nhost = \"198.18.0.2\"\n\
                       [profiles.home.sequences]\nssh = \"7000,8000:udp,9000\"\n";

/// OpenSSH's sshd on the server host, with a throwaway host key and one authorized key.
struct Sshd {
    _daemon: Daemon,
    /// The client's private key.
    identity: PathBuf,
}

impl Sshd {
    fn start(link: &Link, dir: &Path) -> Sshd {
        let keygen = |file: &Path| {
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file)
                .output()
                .expect("run ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        };
        let (host_key, identity) = (dir.join("host_key"), dir.join("id"));
        keygen(&host_key);
        keygen(&identity);
        let authorized = dir.join("id.pub");
        // sshd insists on its privilege separation directory, which its package's tmpfiles
        // rule makes at boot.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let config = write(
            dir,
            "sshd_config",
            &format!(
                "ListenAddress {SERVER_V4}\nPort 22\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                authorized.display()
            ),
        );
        let mut daemon = link.server.spawn(
            "/usr/sbin/sshd",
            [
                "-D".as_ref(),
                "-e".as_ref(),
                "-f".as_ref(),
                config.as_os_str(),
            ],
            &dir.join("sshd.out"),
        );
        daemon.wait_output("Server listening on");
        Sshd {
            _daemon: daemon,
            identity,
        }
    }

    /// Runs `ssh root@SERVER echo ...` on the client host with `options` added; returns
    /// (success, stdout, stderr).
    fn ssh(&self, link: &Link, options: &[&str]) -> (bool, String, String) {
        let mut cmd = link.client.command("ssh");
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(&self.identity)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(options)
            .args([&format!("root@{SERVER_V4}"), "echo", "through the door"]);
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ssh");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
fn ssh_knocks_and_connects_in_one_step() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let sshd = Sshd::start(&link, d);
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", DOOR)
        .start();
    // The door is shut: without the knock, ssh is refused.
    let (ok, _, stderr) = sshd.ssh(&link, &[]);
    assert!(
        !ok && stderr.contains("refused"),
        "ssh got in without a knock: {stderr}"
    );

    let profiles = write(d, "profiles.toml", PROFILE);
    let proxy = format!(
        "ProxyCommand={} --config {} home ssh --proxy %h:%p",
        bin("knock").display(),
        profiles.display()
    );
    let (ok, stdout, stderr) = sshd.ssh(&link, &["-o", &proxy]);
    assert!(ok, "ssh through knock --proxy failed: {stderr}");
    assert_eq!(stdout, "through the door\n");
    server.wait_log("ssh: opened 22/tcp");
}

#[test]
fn knockd_style_knocks_proxy_too_and_verbose_lines_stay_off_the_connection() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let sshd = Sshd::start(&link, d);
    let _server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", DOOR)
        .start();
    let proxy = format!(
        "ProxyCommand={} -v {SERVER_V4} 7000 8000:udp 9000 --proxy %h:%p --wait 20",
        bin("knock").display()
    );
    let (ok, stdout, stderr) = sshd.ssh(&link, &["-o", &proxy]);
    assert!(ok, "ssh through knock --proxy failed: {stderr}");
    assert_eq!(stdout, "through the door\n");
    assert!(stderr.contains("hitting udp 198.18.0.2:8000"), "{stderr}");
}
