//! The harness itself: the link carries traffic both ways, and namespaces are removed.

use knock_e2e::{Link, SERVER_V4, SERVER_V6};

#[test]
fn link_carries_ipv4_and_ipv6_and_cleans_up() {
    let names;
    {
        let Some(link) = Link::up() else { return };
        names = (link.client.name.clone(), link.server.name.clone());
        let out = link.client.run("ping", ["-c1", "-W5", SERVER_V4]);
        assert!(
            out.status.success(),
            "ping v4: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = link.client.run("ping", ["-6", "-c1", "-W5", SERVER_V6]);
        assert!(
            out.status.success(),
            "ping v6: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let list = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "namespaces left behind: {list}"
    );
}
