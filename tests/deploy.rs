//! The command lines of `deploy/`, read from the files themselves, so that the tests run
//! exactly what systemd and Kubernetes would run (with this build's binary and the test's
//! config in place of the installed paths).

use std::path::{Path, PathBuf};

/// Where the unit and the manifest expect the binary and the config.
pub const INSTALLED_NODE: &str = "/usr/local/bin/raft-node";
pub const INSTALLED_CONFIG: &str = "/etc/raft/cluster.toml";

/// `deploy/` in this checkout.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace dir").join("deploy")
}

/// The value of `key=` in the systemd unit `deploy/raft-node@.service` (first occurrence).
pub fn unit_value(key: &str) -> String {
    let path = deploy_dir().join("raft-node@.service");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{} has no {key}=", path.display()))
        .trim()
        .to_string()
}

/// The unit's `ExecStart=` for instance `id`, as argv, with the installed binary and
/// config replaced by `node` and `config`. Panics if the unit's line is not of that shape.
pub fn unit_argv(node: &Path, config: &Path, id: u64) -> Vec<String> {
    let line = unit_value("ExecStart");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&INSTALLED_NODE), "ExecStart runs {INSTALLED_NODE}: {line}");
    assert!(words.contains(&INSTALLED_CONFIG), "ExecStart reads {INSTALLED_CONFIG}: {line}");
    words
        .iter()
        .map(|w| match *w {
            INSTALLED_NODE => node.display().to_string(),
            INSTALLED_CONFIG => config.display().to_string(),
            w => w.replace("%i", &id.to_string()),
        })
        .collect()
}
