//! `deploy/`: the examples are checked as far as they can be here. The systemd unit's
//! command line and restart policy agree with `raft-node`'s exit codes; the Kubernetes
//! manifest parses as YAML, holds what a StatefulSet deployment needs, and its container
//! command runs the node (with this build's binary) and passes SIGTERM to it; the
//! Containerfile installs the binaries where both look for them.

use raft_e2e::deploy::*;
use raft_e2e::*;
use raft_node::exit::{EXIT_CLEAN, EXIT_CONFIG, EXIT_CORRUPT, EXIT_HELD};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

/// A one-node cluster elects itself; generous for two busy cores.
const READY: Duration = Duration::from_secs(20);

fn manifest() -> Vec<Yaml> {
    let path = deploy_dir().join("statefulset.yaml");
    let text = std::fs::read_to_string(&path).expect("read statefulset.yaml");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let mut it = docs.iter().filter(|d| d["kind"].as_str() == Some(kind));
    let doc = it.next().unwrap_or_else(|| panic!("the manifest has a {kind}"));
    assert!(it.next().is_none(), "one {kind}");
    doc
}

/// The node container's shell command (`sh -c <this>`).
fn container_script(docs: &[Yaml]) -> String {
    let set = of_kind(docs, "StatefulSet");
    let containers = set["spec"]["template"]["spec"]["containers"].as_vec().expect("containers");
    let node = containers.iter().find(|c| c["name"].as_str() == Some("raft-node")).expect("a raft-node container");
    let command: Vec<&str> = node["command"].as_vec().expect("command").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(command, ["/bin/sh", "-c"], "the id is computed by the shell");
    node["args"][0].as_str().expect("args[0]").to_string()
}

#[test]
fn systemd_unit_runs_the_tested_command_and_never_restarts_what_cannot_recover() {
    let argv = unit_argv(std::path::Path::new("/bin/raft-node"), std::path::Path::new("/c.toml"), 3);
    assert_eq!(argv, ["/bin/raft-node", "--config", "/c.toml", "--id", "3"], "the instance is the node id");
    let no_restart: BTreeSet<u8> =
        unit_value("RestartPreventExitStatus").split_whitespace().map(|c| c.parse().expect("a code")).collect();
    assert_eq!(no_restart, BTreeSet::from([EXIT_CONFIG, EXIT_HELD, EXIT_CORRUPT]), "codes a restart cannot fix");
    assert_eq!(unit_value("Restart"), "on-failure");
    assert_eq!(unit_value("KillSignal"), "SIGTERM", "the signal raft-node stops cleanly on");
}

/// `systemd-analyze verify` accepts the unit (every key known, the command executable),
/// with this build's binary in place of the installed one. Skipped with one line where
/// systemd's tools are missing: the unit is an example, not something CI installs.
#[test]
fn systemd_analyze_verifies_the_unit() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("SKIPPED systemd_analyze_verifies_the_unit: no systemd-analyze here");
        return;
    }
    let tmp = short_tempdir();
    let text = std::fs::read_to_string(deploy_dir().join("raft-node@.service")).expect("read the unit");
    let unit = tmp.path().join("raft-node@3.service");
    std::fs::write(&unit, text.replace(INSTALLED_NODE, &bins().node.display().to_string())).expect("write unit");
    let out = run_limited(Command::new("systemd-analyze").arg("verify").arg(&unit), COMMAND_LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.stderr.trim(), "", "no warnings: {}", out.describe());
}

#[test]
fn manifest_is_a_statefulset_with_headless_service_config_secret_and_volume() {
    let docs = manifest();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "Service", "StatefulSet"]));
    let svc = of_kind(&docs, "Service");
    let set = of_kind(&docs, "StatefulSet");
    let cm = of_kind(&docs, "ConfigMap");
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some("None"), "headless: one DNS name per pod");
    assert_eq!(set["spec"]["serviceName"].as_str(), svc["metadata"]["name"].as_str(), "pods named through it");
    let pod = &set["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_vec().expect("volumes");
    let cm_name = cm["metadata"]["name"].as_str().expect("configmap name");
    assert!(volumes.iter().any(|v| v["configMap"]["name"].as_str() == Some(cm_name)), "config from the ConfigMap");
    assert!(volumes.iter().any(|v| v["secret"]["secretName"].as_str().is_some()), "certs from a Secret");
    let claims = set["spec"]["volumeClaimTemplates"].as_vec().expect("a PVC template");
    let data = claims[0]["metadata"]["name"].as_str().expect("claim name");
    let node = &pod["containers"][0];
    let mounts = node["volumeMounts"].as_vec().expect("mounts");
    let mount_of =
        |name: &str| mounts.iter().find(|m| m["name"].as_str() == Some(name)).map(|m| m["mountPath"].clone());
    assert_eq!(mount_of(data).and_then(|p| p.as_str().map(String::from)).as_deref(), Some("/var/lib/raft"));
    let config_vol = volumes.iter().find(|v| v["configMap"]["name"].as_str() == Some(cm_name)).expect("config vol");
    let config_dir = mount_of(config_vol["name"].as_str().expect("vol name")).expect("config mounted");
    assert_eq!(
        format!("{}/cluster.toml", config_dir.as_str().expect("path")),
        INSTALLED_CONFIG,
        "the config is where the command line reads it"
    );
    assert!(node["readinessProbe"].as_hash().is_some(), "a readiness probe");
    // The container runs the unit's command line, with the id from the pod ordinal.
    let script = container_script(&docs);
    let unit = unit_value("ExecStart").replace("%i", "");
    assert!(script.contains(unit.trim_end()), "the container runs `{unit}`: {script}");
    let toml = cm["data"]["cluster.toml"].as_str().expect("cluster.toml in the ConfigMap");
    let replicas = set["spec"]["replicas"].as_i64().expect("replicas");
    assert!(toml.contains(&format!("nodes = {replicas}")), "one node per replica: {toml}");
    for ordinal in 0..replicas {
        assert!(toml.contains(&format!("\"raft-{ordinal}.raft.")), "addrs names pod raft-{ordinal}: {toml}");
    }
    // The ConfigMap's config is one raft-config accepts: TCP, one address per replica,
    // TLS on, binding every interface of the pod.
    let cfg = raft_config::ClusterConfig::from_toml(toml).unwrap_or_else(|e| panic!("the ConfigMap's config: {e}"));
    assert_eq!(cfg.transport, "tcp");
    assert!(!cfg.insecure, "TLS on");
    assert_eq!(cfg.addrs.len() as i64, replicas);
    assert_eq!(cfg.nodes as i64, replicas);
    assert_eq!(cfg.listen_host, "0.0.0.0");
    assert_eq!(cfg.dir, std::path::Path::new("/var/lib/raft"), "the data volume");
}

/// The container's command, run by `sh` as the container runs it (pod `raft-0`, so node
/// 1), with this build's binary and a one-node config: the node starts, and SIGTERM (what
/// pod deletion sends) reaches it through `exec` and stops it with exit 0.
#[test]
fn container_command_starts_node_from_pod_ordinal_and_stops_on_sigterm() {
    let _bins = bins();
    let tmp = short_tempdir();
    let config = tmp.path().join("cluster.toml");
    std::fs::write(&config, format!("dir = {:?}\nnodes = 1\nredis_port = 0\n", tmp.path().display().to_string()))
        .expect("write the config");
    raft_wire::auth::ClusterKey::create_if_missing(&tmp.path().join("cluster.key")).expect("cluster key");
    let script = container_script(&manifest())
        .replace(INSTALLED_NODE, &bins().node.display().to_string())
        .replace(INSTALLED_CONFIG, &config.display().to_string());
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]).env("HOSTNAME", "raft-0");
    let mut node = NodeProc::spawn(cmd, &tmp.path().join("pod"));
    node.wait_output("became leader", READY);
    assert!(node.output().lines().next().is_some_and(|l| l.split(' ').nth(1) == Some("n1")), "raft-0 is node 1");
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(Duration::from_secs(10)).code(), Some(i32::from(EXIT_CLEAN)), "{}", node.describe());
}

#[test]
fn containerfile_builds_the_binaries_and_installs_them_where_unit_and_manifest_look() {
    let text = std::fs::read_to_string(deploy_dir().join("Containerfile")).expect("read Containerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(text.contains("cargo build --release --locked"), "a reproducible release build");
    let copy = text.lines().find(|l| l.starts_with("COPY --from=build")).expect("the runtime copies the binaries");
    for bin in ["raft-node", "raft-cli", "raft-supervisor"] {
        assert!(copy.contains(&format!("/target/release/{bin}")), "{bin}: {copy}");
    }
    let dest = copy.split_whitespace().last().expect("destination");
    assert_eq!(format!("{dest}raft-node"), INSTALLED_NODE, "installed where the unit and the manifest run it");
    // The manifest's user is the image's.
    let set_user = of_kind(&manifest(), "StatefulSet")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        .as_i64()
        .expect("runAsUser");
    assert!(text.contains(&format!("--uid {set_user}")), "the image's user is uid {set_user}");
}
