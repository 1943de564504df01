//! The systemd unit in dist/ is accepted by `systemd-analyze verify`, with ExecStart pointed
//! at the binary under test and its man page (Documentation=) on MANPATH. scripts/test
//! installs systemd; on a machine without it the test says so and fails rather than pass
//! silently.

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_accepts_the_unit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: run scripts/setup-debian"
    );
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root.join("dist/knock-server.service")).unwrap();
    let unit = unit.replace("/usr/bin/knock-server", env!("CARGO_BIN_EXE_knock-server"));
    let path = dir.path().join("knock-server.service");
    std::fs::write(&path, unit).unwrap();
    let man8 = dir.path().join("man/man8");
    std::fs::create_dir_all(&man8).unwrap();
    std::fs::copy(root.join("man/knock-server.8"), man8.join("knock-server.8")).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
