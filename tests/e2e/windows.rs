//! The client cross-built for Windows (`knock.exe`, target x86_64-pc-windows-gnu), run for
//! real under Wine on the client host against knock-server across the link: its profile from
//! `%APPDATA%`, knockd-style ports, TCP (always the connect fallback on Windows) and UDP, and
//! its errors with exit status 2.
//!
//! Debian 12's Wine 8.0 has no `bcryptprimitives.dll`, whose `ProcessPrng` Rust's standard
//! library imports, so the test builds a stand-in with MinGW from `tests/wine/` and puts it
//! beside `knock.exe` (Windows looks in the program's directory first). The Wine prefix lives
//! in the test's scratch directory; Wine gets no display and no Mono or Gecko to fetch.
//!
//! `scripts/test` builds `knock.exe` before the tests; without it, or without Wine or MinGW,
//! this test skips with a reason, except in CI (`KNOCK_TESTS_REQUIRE_ROOT=1`), where it fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use knock_e2e::{
    CLIENT_V4, Knock, Link, REQUIRE_ROOT_VAR, SERVER_V4, Server, WINE, bin, scratch, wine_command,
};
/// Wine's server, one per prefix.
const WINESERVER: &str = "/usr/lib/wine/wineserver";
/// MinGW's C compiler for 64-bit Windows.
const MINGW_CC: &str = "x86_64-w64-mingw32-gcc";

/// Three doors: TCP knockd-style, a profile's mixed sequence, and UDP.
const DOORS: &str = "[doors.tcp]\nsequence = \"7000,8000,9000\"\ncommand = \"/bin/true\"\n\
                     [doors.profile]\nsequence = \"7100,8100:udp,9100\"\ncommand = \"/bin/true\"\n\
                     [doors.udp]\nsequence = \"7200:udp,8200:udp\"\ncommand = \"/bin/true\"\n";

/// `knock.exe` ready to run in a fresh Wine prefix.
struct Wine {
    dir: PathBuf,
    exe: PathBuf,
}

impl Wine {
    /// Copies `knock.exe` and the stand-in DLL built from source into `dir`. `None` (the test
    /// skips) when something is missing and CI does not require everything to run.
    fn prepare(dir: &Path) -> Option<Wine> {
        let Some(built) = knock_exe() else {
            return skip(
                "knock.exe is not built (cargo build -p knock-client --target x86_64-pc-windows-gnu)",
            );
        };
        if !Path::new(WINE).exists() {
            return skip("Wine is not installed (apt-get install --no-install-recommends wine64)");
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine");
        let dll = dir.join("bcryptprimitives.dll");
        let cc = Command::new(MINGW_CC)
            .args(["-shared", "-O2", "-s", "-o"])
            .arg(&dll)
            .arg(source.join("bcryptprimitives.c"))
            .arg(source.join("bcryptprimitives.def"))
            .arg("-ladvapi32")
            .output();
        match cc {
            Err(e) => {
                return skip(&format!(
                    "cannot run {MINGW_CC} ({e}): install gcc-mingw-w64-x86-64-win32"
                ));
            }
            Ok(out) => assert!(out.status.success(), "building the stand-in DLL: {out:?}"),
        }
        let exe = dir.join("knock.exe");
        std::fs::copy(&built, &exe).expect("copy knock.exe");
        Some(Wine {
            dir: dir.to_owned(),
            exe,
        })
    }

    /// `knock.exe args` under Wine on the client host.
    fn knock<'a>(&self, link: &'a Link, args: &[&str]) -> Knock<'a> {
        Knock::wine(&link.client, &self.dir).args(args)
    }

    /// `program` on the client host, in this prefix, with Wine's environment.
    fn command(&self, link: &Link, program: &str) -> Command {
        wine_command(&link.client, &self.dir, program)
    }

    /// Starts the prefix's wineserver on the client host (Wine's sockets are made by the
    /// wineserver, so it must live in the namespace that knocks) and keeps it running, then
    /// sets the prefix up with one run whose helpers (services.exe and so on) hold no pipe of
    /// a later run open.
    fn start(&self, link: &Link) {
        let quiet = |mut cmd: Command| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run wine")
        };
        // wineserver wants the prefix directory; Wine still fills it in on the first run.
        std::fs::create_dir_all(self.dir.join("prefix")).expect("create the Wine prefix");
        let mut server = self.command(link, WINESERVER);
        server.arg("-p");
        let status = quiet(server);
        assert!(status.success(), "wineserver -p: {status}");
        let mut first = self.command(link, WINE);
        first.arg(&self.exe).arg("--version");
        let status = quiet(first);
        assert!(status.success(), "knock.exe --version under Wine: {status}");
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, link: &Link, args: &[&str]) -> String {
        self.knock(link, args).stdout()
    }

    /// Runs and expects exit status 2; returns stderr.
    fn fails(&self, link: &Link, args: &[&str]) -> String {
        self.knock(link, args).fails()
    }

    /// The host path of a `C:\...` path inside the prefix.
    fn host_path(&self, windows: &str) -> PathBuf {
        let rest = windows
            .strip_prefix("C:\\")
            .unwrap_or_else(|| panic!("not a C: path: {windows}"));
        self.dir
            .join("prefix/drive_c")
            .join(rest.replace('\\', "/"))
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        // The prefix's wineserver lingers for a few seconds after the last program; end it
        // now, before the scratch directory goes.
        let _ = Command::new(WINESERVER)
            .arg("-k")
            .env("WINEPREFIX", self.dir.join("prefix"))
            .status();
    }
}

/// `knock.exe` built for the profile this test runs under, if it is there.
fn knock_exe() -> Option<PathBuf> {
    let native = bin("knock");
    let profile_dir = native.parent()?;
    let target = profile_dir.parent()?;
    let exe = target
        .join("x86_64-pc-windows-gnu")
        .join(profile_dir.file_name()?)
        .join("knock.exe");
    exe.exists().then_some(exe)
}

/// Skips with a visible reason, or fails in CI where nothing may be skipped.
fn skip<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var_os(REQUIRE_ROOT_VAR).is_none_or(|v| v != "1"),
        "{why}, and {REQUIRE_ROOT_VAR}=1 forbids skipping: scripts/setup-debian installs it"
    );
    let _ = writeln!(std::io::stderr(), "skipped: knock.exe under Wine: {why}");
    None
}

#[test]
fn knock_exe_under_wine_opens_doors_and_reports_errors() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let Some(wine) = Wine::prepare(d) else { return };
    wine.start(&link);
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", DOORS)
        .start();

    // No profile yet: the message names the config's place under %APPDATA%.
    let stderr = wine.fails(&link, &["--list"]);
    let at = stderr
        .split("no config file at ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no config path in: {stderr}"));
    assert!(
        at.starts_with("C:\\users\\")
            && at.ends_with("\\AppData\\Roaming\\knock\\config\\config.toml"),
        "{at}"
    );
    let profile = wine.host_path(at);
    std::fs::create_dir_all(profile.parent().expect("config dir")).expect("create config dir");
    std::fs::write(
        &profile,
        format!("[profiles.home]\nhost = \"{SERVER_V4}\"\n[profiles.home.sequences]\ndoor = \"7100,8100:udp,9100\"\n"),
    )
    .expect("write the profile");
    assert!(
        wine.ok(&link, &["--list"])
            .contains("door  7100,8100:udp,9100")
    );

    let out = wine.ok(&link, &["-v", "home", "door"]);
    assert!(out.contains("abandoned connect() attempts"), "{out}");
    server.wait_log(&format!("{CLIENT_V4}: profile: OPEN SESAME"));
    wine.ok(&link, &[SERVER_V4, "7000", "8000", "9000"]);
    server.wait_log(&format!("{CLIENT_V4}: tcp: OPEN SESAME"));
    wine.ok(&link, &["-u", SERVER_V4, "7200", "8200"]);
    server.wait_log(&format!("{CLIENT_V4}: udp: OPEN SESAME"));

    let stderr = wine.fails(&link, &[SERVER_V4, "7000,8000,9000"]);
    assert!(
        stderr.contains("separate the ports with spaces"),
        "{stderr}"
    );
    std::fs::write(&profile, "[profiles.home]\nhots = \"h\"\n").expect("break the profile");
    let stderr = wine.fails(&link, &["home", "door"]);
    assert!(
        stderr.contains("config.toml:2:1: unknown key `hots`, did you mean `host`?"),
        "{stderr}"
    );
    // knockd-style needs no profile: the broken one does not stop it.
    wine.ok(&link, &[SERVER_V4, "7000", "8000", "9000"]);
    server.wait_log_count(&format!("{CLIENT_V4}: tcp: OPEN SESAME"), 2);
    let stderr = wine.fails(&link, &["--hits", "0", "home", "door"]);
    assert!(stderr.contains("--hits"), "{stderr}");
}
