use super::*;

fn err(text: &str) -> ConfigError {
    ClusterConfig::from_toml(text).expect_err("config should be refused")
}

fn key_of(text: &str) -> String {
    let e = err(text);
    let key = e.key().unwrap_or_else(|| panic!("error names no key: {e}")).to_string();
    assert!(e.to_string().contains(&key), "message `{e}` should name `{key}`");
    key
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(ClusterConfig::from_toml("").unwrap(), ClusterConfig::default());
    let d = ClusterConfig::default();
    assert_eq!((d.nodes, d.tick_ms, d.fsync), (5, 10, true));
    assert_eq!((d.heartbeat_ticks, d.election_ticks_min, d.election_ticks_max), (5, 15, 30));
    assert_eq!(d.restart_backoff_min_ms, 100);
    d.validate().unwrap();
}

#[test]
fn example_file_documents_every_key_and_equals_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cluster.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(ClusterConfig::from_toml(&text).unwrap(), ClusterConfig::default());
    let keys = toml::from_str::<toml::Table>(&ClusterConfig::default().to_toml()).unwrap();
    for key in keys.keys() {
        let documented = text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{key} ="))
        });
        assert!(documented, "cluster.example.toml does not document `{key}`");
    }
}

#[test]
fn default_dir_follows_tmpdir_and_uid() {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(default_dir_from(None), PathBuf::from(format!("/tmp/raft-cluster-{uid}")));
    assert_eq!(default_dir_from(Some("".into())), PathBuf::from(format!("/tmp/raft-cluster-{uid}")));
    assert_eq!(default_dir_from(Some("/var/tmp/".into())), PathBuf::from(format!("/var/tmp/raft-cluster-{uid}")));
}

#[test]
fn quota_bytes_defaults_to_2_gib_and_0_turns_it_off() {
    assert_eq!(ClusterConfig::default().quota_bytes, 2_147_483_648);
    assert_eq!(DEFAULT_QUOTA_BYTES, 2_147_483_648);
    assert_eq!(ClusterConfig::from_toml("quota_bytes = 0").unwrap().quota_bytes, 0);
    assert_eq!(ClusterConfig::from_toml("quota_bytes = 4096").unwrap().quota_bytes, 4096);
    let max = ClusterConfig::from_toml(&format!("quota_bytes = {MAX_QUOTA_BYTES}")).unwrap();
    assert_eq!(ClusterConfig::from_toml(&max.to_toml()).unwrap(), max);
    let e = err(&format!("quota_bytes = {}", MAX_QUOTA_BYTES + 1));
    assert!(e.to_string().contains("0 turns the quota off"), "{e}");
    assert_eq!(key_of("quota_bytes = -1"), "quota_bytes");
    assert_eq!(key_of("quota_bytes = \"2GiB\""), "quota_bytes");
}

#[test]
fn allowed_uids_is_a_list_of_uids() {
    assert!(ClusterConfig::default().allowed_uids.is_empty());
    let c = ClusterConfig::from_toml("allowed_uids = [65534, 1000]").unwrap();
    assert_eq!(c.allowed_uids, vec![65534, 1000]);
    assert_eq!(ClusterConfig::from_toml(&c.to_toml()).unwrap(), c);
    for bad in ["allowed_uids = 1000", "allowed_uids = [-1]", "allowed_uids = [\"nobody\"]"] {
        assert_eq!(key_of(bad), "allowed_uids", "{bad}");
    }
}

#[test]
fn to_toml_roundtrips() {
    let c = ClusterConfig {
        dir: "/tmp/some \"quoted\" dir".into(),
        nodes: 3,
        fsync: false,
        tick_ms: 250,
        ..ClusterConfig::default()
    };
    assert_eq!(ClusterConfig::from_toml(&c.to_toml()).unwrap(), c);
}

#[test]
fn paths() {
    let c = ClusterConfig::from_toml("dir = \"/x/c\"\nnodes = 3").unwrap();
    assert_eq!(c.node_ids(), vec![1, 2, 3]);
    assert_eq!(c.node_dir(2), PathBuf::from("/x/c/node-2"));
    assert_eq!(c.node_socket(2), PathBuf::from("/x/c/node-2/node.sock"));
    assert_eq!(c.node_log(3), PathBuf::from("/x/c/node-3/node.log"));
    assert_eq!(c.node_wal_dir(1), PathBuf::from("/x/c/node-1/wal"));
    assert_eq!(c.node_snap_dir(1), PathBuf::from("/x/c/node-1/snap"));
    assert_eq!(c.supervisor_socket(), PathBuf::from("/x/c/supervisor.sock"));
    assert_eq!(c.supervisor_log(), PathBuf::from("/x/c/supervisor.log"));
    assert_eq!(c.cluster_key_path(), PathBuf::from("/x/c/cluster.key"));
    assert_eq!(c.effective_config_path(), PathBuf::from("/x/c/cluster.toml"));
    assert!(c.is_node(3) && !c.is_node(0) && !c.is_node(4));
}

#[test]
#[should_panic(expected = "node id 65 is not in 1..=64")]
fn node_dir_of_a_stranger_is_a_bug() {
    ClusterConfig::from_toml("dir = \"/x\"\nnodes = 3").unwrap().node_dir(65);
}

/// Nodes added at run time have ids past `nodes`: their paths are derived like the others.
#[test]
fn added_nodes_have_paths_too() {
    let c = ClusterConfig::from_toml("dir = \"/x\"\nnodes = 3").unwrap();
    assert_eq!(c.node_socket(7), std::path::Path::new("/x/node-7/node.sock"));
    assert!(ClusterConfig::is_node_id(MAX_NODE_ID) && !ClusterConfig::is_node_id(0));
    assert!(!ClusterConfig::is_node_id(MAX_NODE_ID + 1));
    assert_eq!(ClusterConfig::default().promote_lag, 1024);
    assert_eq!(ClusterConfig::from_toml("promote_lag = 0").unwrap().promote_lag, 0);
}

#[test]
fn cluster_id_is_fnv1a_of_the_dir() {
    // Reference values of 64-bit FNV-1a.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    let a = ClusterConfig::from_toml("dir = \"/tmp/a\"").unwrap();
    let b = ClusterConfig::from_toml("dir = \"/tmp/b\"").unwrap();
    assert_eq!(a.cluster_id(), fnv1a(b"/tmp/a"));
    assert_ne!(a.cluster_id(), b.cluster_id());
    let a2 = ClusterConfig::from_toml("dir = \"/tmp/a\"\nnodes = 3").unwrap();
    assert_eq!(a.cluster_id(), a2.cluster_id());
}

#[test]
fn unknown_key_is_named() {
    let e = err("nodes = 3\nnode = 4\n");
    assert!(matches!(&e, ConfigError::UnknownKey { key, .. } if key == "node"), "{e}");
    assert!(e.to_string().contains("unknown key `node`"), "{e}");
}

#[test]
fn unknown_key_gives_line_and_nearest_key() {
    let e = err("nodes = 3\n\ntick_sm = 50\n");
    match &e {
        ConfigError::UnknownKey { key, line, suggestion, .. } => {
            assert_eq!(key, "tick_sm");
            assert_eq!(*line, Some(3));
            assert_eq!(suggestion.as_deref(), Some("tick_ms"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().ends_with("unknown key `tick_sm` on line 3; did you mean `tick_ms`?"), "{e}");
    // Nothing near: no guess, still the line.
    let e = err("bananas = 1\n");
    assert!(e.to_string().ends_with("unknown key `bananas` on line 1"), "{e}");
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("tick_ms", "tick_ms"), 0);
    assert_eq!(edit_distance("tick_sm", "tick_ms"), 1);
    assert_eq!(edit_distance("fsycn", "fsync"), 1);
    assert_eq!(edit_distance("node", "nodes"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(nearest_key("tick_sm", ["dir", "nodes", "tick_ms"]), Some("tick_ms".into()));
    assert_eq!(nearest_key("x", ["dir"]), None, "a one-letter key is not a misspelling of a three-letter one");
    assert_eq!(nearest_key("zzzzzz", ["nodes"]), None);
}

#[test]
fn tables_are_not_allowed() {
    // The file is flat; a table header is an unknown key.
    assert_eq!(key_of("[raft]\ntick_ms = 3\n"), "raft");
}

#[test]
fn wrong_types_name_the_key() {
    assert_eq!(key_of("nodes = \"five\""), "nodes");
    assert_eq!(key_of("tick_ms = -1"), "tick_ms");
    assert_eq!(key_of("fsync = 1"), "fsync");
    assert_eq!(key_of("dir = 5"), "dir");
    assert_eq!(key_of("nodes = 5\n  heartbeat_ticks  =  1.5"), "heartbeat_ticks");
    assert_eq!(key_of("election_ticks_max = 99999999999"), "election_ticks_max");
}

#[test]
fn syntax_error_is_an_error() {
    let e = err("nodes = ");
    assert_eq!(e.key(), Some("nodes"), "{e}");
    assert!(e.to_string().contains("malformed"), "{e}");
    let e = err("= 3");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
    assert!(e.to_string().contains("line 1"), "{e}");
    let e = err("nodes = 3\nnodes = 4");
    assert!(e.to_string().contains("nodes") || e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        ("nodes = 0", "nodes"),
        ("nodes = 10", "nodes"),
        ("tick_ms = 0", "tick_ms"),
        ("tick_ms = 60001", "tick_ms"),
        ("heartbeat_ticks = 0", "heartbeat_ticks"),
        ("heartbeat_ticks = 15", "election_ticks_min"),
        ("election_ticks_min = 5", "election_ticks_min"),
        ("election_ticks_min = 30", "election_ticks_max"),
        ("election_ticks_max = 10", "election_ticks_max"),
        ("snapshot_entries = 0", "snapshot_entries"),
        ("snapshot_bytes = 0", "snapshot_bytes"),
        ("quota_bytes = 1099511627777", "quota_bytes"),
        ("promote_lag = 1000001", "promote_lag"),
        ("restart_intensity = 1001", "restart_intensity"),
        ("restart_period_ms = 0", "restart_period_ms"),
        ("restart_backoff_min_ms = 0", "restart_backoff_min_ms"),
        ("restart_backoff_max_ms = 50", "restart_backoff_max_ms"),
        ("restart_backoff_max_ms = 3600001", "restart_backoff_max_ms"),
        ("shutdown_grace_ms = 3600001", "shutdown_grace_ms"),
        ("status_poll_ms = 0", "status_poll_ms"),
        ("dir = \"\"", "dir"),
    ];
    for (text, key) in cases {
        let e = err(text);
        assert!(matches!(e, ConfigError::Invalid { .. }), "{text}: {e}");
        assert_eq!(e.key(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains(&format!("`{key}`")), "{text}: {e}");
    }
}

#[test]
fn boundary_values_are_accepted() {
    ClusterConfig::from_toml("nodes = 1").unwrap();
    ClusterConfig::from_toml("nodes = 9").unwrap();
    ClusterConfig::from_toml("tick_ms = 1").unwrap();
    // The smallest timing the catch-up guard allows.
    let h = MAX_CATCH_UP_TICKS + 1;
    ClusterConfig::from_toml(&format!(
        "heartbeat_ticks = {h}\nelection_ticks_min = {}\nelection_ticks_max = {}",
        h + 1,
        h + 2
    ))
    .unwrap();
    ClusterConfig::from_toml("restart_intensity = 0").unwrap();
    ClusterConfig::from_toml("shutdown_grace_ms = 0").unwrap();
    ClusterConfig::from_toml("restart_backoff_min_ms = 7\nrestart_backoff_max_ms = 7").unwrap();
}

/// A late node replays at most MAX_CATCH_UP_TICKS ticks at once; a config whose heartbeat
/// or election timeout is that short would let the replay fire a round before the node
/// has read what its peers sent. Such a config is refused, naming the keys.
#[test]
fn timeouts_at_or_below_the_catch_up_guard_are_refused_naming_the_keys() {
    let m = MAX_CATCH_UP_TICKS;
    for hb in 1..=m {
        let text = format!("heartbeat_ticks = {hb}\nelection_ticks_min = 20\nelection_ticks_max = 30");
        let e = err(&text);
        assert_eq!(e.key(), Some("heartbeat_ticks"), "{text}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("`heartbeat_ticks`") && msg.contains("MAX_CATCH_UP_TICKS"), "{msg}");
        assert!(msg.contains("election_ticks_min"), "names the other key too: {msg}");
    }
    let e = err(&format!("heartbeat_ticks = {}\nelection_ticks_min = {m}\nelection_ticks_max = 30", m + 1));
    assert_eq!(e.key(), Some("election_ticks_min"), "{e}");
    assert!(e.to_string().contains("MAX_CATCH_UP_TICKS") && e.to_string().contains("heartbeat_ticks"), "{e}");
    // The defaults keep their margin.
    let d = ClusterConfig::default();
    assert!(MAX_CATCH_UP_TICKS < d.heartbeat_ticks && d.heartbeat_ticks < d.election_ticks_min);
}

#[test]
fn long_socket_path_is_refused_naming_path_and_length() {
    // "/" + 86 chars + "/node-9/node.sock" (17) = 104 bytes: fits.
    let ok = format!("/{}", "a".repeat(86));
    ClusterConfig::from_toml(&format!("dir = \"{ok}\"\nnodes = 9")).unwrap();
    // 91 + 17 = 108 bytes: one over.
    let long = format!("/{}", "a".repeat(90));
    let e = err(&format!("dir = \"{long}\"\nnodes = 9"));
    match &e {
        ConfigError::SocketPathTooLong { path, len, max } => {
            assert_eq!(path, &PathBuf::from(format!("{long}/node-9/node.sock")));
            assert_eq!((*len, *max), (108, 107));
        }
        other => panic!("expected SocketPathTooLong, got {other}"),
    }
    assert_eq!(e.key(), Some("dir"));
    let msg = e.to_string();
    assert!(msg.contains("node-9/node.sock") && msg.contains("108") && msg.contains("107"), "{msg}");
}

#[test]
fn non_utf8_dir_is_refused() {
    use std::os::unix::ffi::OsStringExt;
    let c = ClusterConfig { dir: PathBuf::from(OsString::from_vec(vec![b'/', 0xff])), ..Default::default() };
    assert_eq!(c.validate().unwrap_err().key(), Some("dir"));
}

#[test]
fn normalize_is_lexical() {
    assert_eq!(normalize(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
    assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
    assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
}

mod lookup {
    use super::*;
    use std::fs;

    #[test]
    fn order_is_explicit_env_cwd_embedded() {
        let t = tempfile::tempdir().unwrap();
        let cwd = t.path();
        fs::write(cwd.join("explicit.toml"), "nodes = 1").unwrap();
        fs::write(cwd.join("env.toml"), "nodes = 2").unwrap();

        // Nothing: embedded.
        let (c, s) = load_from(None, None, cwd).unwrap();
        assert_eq!((c, s), (ClusterConfig::default(), ConfigSource::Embedded));
        // Empty $RAFT_CONFIG counts as unset.
        let (_, s) = load_from(None, Some("".into()), cwd).unwrap();
        assert_eq!(s, ConfigSource::Embedded);

        fs::write(cwd.join("cluster.toml"), "nodes = 3").unwrap();
        let (c, s) = load_from(None, None, cwd).unwrap();
        assert_eq!((c.nodes, s), (3, ConfigSource::CurrentDir(cwd.join("cluster.toml"))));

        let (c, s) = load_from(None, Some("env.toml".into()), cwd).unwrap();
        assert_eq!((c.nodes, s), (2, ConfigSource::Env(cwd.join("env.toml"))));

        let (c, s) = load_from(Some(Path::new("explicit.toml")), Some("env.toml".into()), cwd).unwrap();
        assert_eq!((c.nodes, s), (1, ConfigSource::Explicit(cwd.join("explicit.toml"))));
    }

    #[test]
    fn relative_dir_is_resolved_against_the_file() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("conf")).unwrap();
        let file = t.path().join("conf/c.toml");
        fs::write(&file, "dir = \"../data/./c1\"").unwrap();
        let (c, _) = load_from(Some(&file), None, Path::new("/")).unwrap();
        assert_eq!(c.dir, t.path().join("data/c1"));
        // A file without `dir` gets the default one.
        fs::write(&file, "nodes = 3").unwrap();
        let (c, _) = load_from(Some(&file), None, Path::new("/")).unwrap();
        assert_eq!(c.dir, default_dir());
    }

    #[test]
    fn missing_explicit_or_env_file_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let e = load_from(Some(Path::new("nope.toml")), None, t.path()).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }) && e.to_string().contains("nope.toml"), "{e}");
        let e = load_from(None, Some("gone.toml".into()), t.path()).unwrap_err();
        assert!(e.to_string().contains("gone.toml"), "{e}");
    }

    #[test]
    fn errors_in_a_file_name_the_file_and_key() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("bad.toml");
        fs::write(&file, "nodes = 3\nfsycn = false\n").unwrap();
        let e = load_from(Some(&file), None, t.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bad.toml") && msg.contains("`fsycn`"), "{msg}");
        fs::write(&file, "nodes = 30\n").unwrap();
        let e = load_from(Some(&file), None, t.path()).unwrap_err();
        assert_eq!(e.key(), Some("nodes"));
    }

    #[test]
    fn oversized_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("big.toml");
        fs::write(&file, "#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1)).unwrap();
        let e = load_from(Some(&file), None, t.path()).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn long_tmpdir_makes_embedded_default_fail_clearly() {
        let long = format!("/{}", "t".repeat(100));
        let c = ClusterConfig { dir: default_dir_from(Some(long.into())), ..Default::default() };
        assert!(matches!(c.validate(), Err(ConfigError::SocketPathTooLong { .. })));
    }
}

#[test]
fn redis_port_and_bind_default_to_6379_on_loopback_and_are_checked() {
    let d = ClusterConfig::default();
    assert_eq!((d.redis_port, d.redis_bind.as_str()), (6379, "127.0.0.1"));
    assert_eq!(d.redis_addr(1), Some("127.0.0.1:6380".parse().unwrap()));
    assert_eq!(d.redis_addr(5), Some("127.0.0.1:6384".parse().unwrap()));
    assert_eq!(d.redis_addr(6), Some("127.0.0.1:6385".parse().unwrap()), "a node added at run time");
    let high = ClusterConfig::from_toml("redis_port = 65530").unwrap();
    assert_eq!(high.redis_addr(5), Some("127.0.0.1:65535".parse().unwrap()));
    assert_eq!(high.redis_addr(6), None, "past port 65535: no RESP for that node");
    let off = ClusterConfig::from_toml("redis_port = 0").unwrap();
    assert_eq!(off.redis_addr(1), None, "0 turns the front end off");
    let c = ClusterConfig::from_toml("redis_port = 7000\nredis_bind = \"::1\"").unwrap();
    assert_eq!(c.redis_addr(2), Some("[::1]:7002".parse().unwrap()));
    assert_eq!(ClusterConfig::from_toml(&c.to_toml()).unwrap(), c);
    assert!(ClusterConfig::from_toml("redis_port = 65530").is_ok(), "65530 + 5 still fits");
    let e = err("redis_port = 65531");
    assert!(e.to_string().contains("0 turns the RESP front end off"), "{e}");
    for bad in ["redis_port = 65531", "redis_port = -1", "redis_port = \"6379\""] {
        assert_eq!(key_of(bad), "redis_port", "{bad}");
    }
    for bad in ["redis_bind = \"localhost\"", "redis_bind = \"\"", "redis_bind = 1"] {
        assert_eq!(key_of(bad), "redis_bind", "{bad}");
    }
}

// ----- issue 18: transport keys ------------------------------------------------------------

const TCP3: &str = "dir = \"/x\"\nnodes = 3\ntransport = \"tcp\"\naddrs = [\"10.0.0.1:7001\", \"10.0.0.2:7001\", \"node-c.example:7002\"]\n";

#[test]
fn a_flat_file_without_transport_keys_is_the_unix_socket_cluster() {
    let c = ClusterConfig::from_toml("dir = \"/x\"").unwrap();
    assert_eq!(c.transport_kind(), Transport::Unix);
    assert_eq!(c.node_endpoint(2).unwrap(), Endpoint::Unix("/x/node-2/node.sock".into()));
    assert_eq!(c.listen_endpoint(2).unwrap(), c.node_endpoint(2).unwrap());
}

#[test]
fn tcp_nodes_listen_and_are_dialled_at_their_addrs_entry() {
    let c = ClusterConfig::from_toml(TCP3).unwrap();
    assert_eq!(c.transport_kind(), Transport::Tls, "tcp without insecure is TLS");
    assert_eq!(c.node_endpoint(1).unwrap(), Endpoint::Tcp("10.0.0.1:7001".into()));
    assert_eq!(c.node_endpoint(3).unwrap(), Endpoint::Tcp("node-c.example:7002".into()));
    assert_eq!(c.node_host(3).as_deref(), Some("node-c.example"));
    let c = ClusterConfig::from_toml(&format!("{TCP3}listen_host = \"0.0.0.0\"\ninsecure = true")).unwrap();
    assert_eq!(c.transport_kind(), Transport::InsecureTcp);
    assert_eq!(c.listen_endpoint(2).unwrap(), Endpoint::Tcp("0.0.0.0:7001".into()));
    assert_eq!(ClusterConfig::from_toml(&c.to_toml()).unwrap(), c, "the effective config round-trips");
}

#[test]
fn a_tcp_node_id_past_the_addrs_list_is_a_clear_error() {
    let c = ClusterConfig::from_toml(TCP3).unwrap();
    let e = c.node_endpoint(4).unwrap_err();
    assert_eq!(e.key(), Some("addrs"));
    assert!(e.to_string().contains("node 4 has no entry (3 listed)"), "{e}");
}

#[test]
fn node_n_is_at_addrs_n_minus_one_and_nowhere_else() {
    let addrs: Vec<String> = ["a:1", "b:2"].iter().map(|s| s.to_string()).collect();
    assert_eq!(crate::transport::addr_of(&addrs, 1), Some("a:1"));
    assert_eq!(crate::transport::addr_of(&addrs, 2), Some("b:2"));
    assert_eq!(crate::transport::addr_of(&addrs, 0), None, "0 is no node");
    assert_eq!(crate::transport::addr_of(&addrs, 3), None);
    assert_eq!(crate::transport::addr_of(&addrs, u64::MAX), None);
}

#[test]
fn tcp_without_enough_addrs_or_with_a_bad_one_is_refused_naming_the_key() {
    let e = err("nodes = 3\ntransport = \"tcp\"");
    assert_eq!(e.key(), Some("addrs"));
    assert!(e.to_string().contains("0 listed, nodes = 3"), "{e}");
    assert_eq!(key_of("nodes = 2\ntransport = \"tcp\"\naddrs = [\"a:1\"]"), "addrs");
    for bad in ["\"10.0.0.1\"", "\"10.0.0.1:0\"", "\"10.0.0.1:70000\"", "\":7001\"", "\"a b:1\""] {
        let e = err(&format!("nodes = 1\ntransport = \"tcp\"\naddrs = [{bad}]"));
        assert_eq!(e.key(), Some("addrs"), "{bad}: {e}");
        assert!(e.to_string().contains("node 1"), "{e}");
    }
    assert_eq!(key_of("transport = \"udp\""), "transport");
    assert_eq!(key_of("addrs = [\"a:1\"]"), "addrs", "addrs with the unix transport");
    assert_eq!(key_of(&format!("{TCP3}listen_host = \"any\"")), "listen_host");
    assert_eq!(key_of("tls_ca = \"\""), "tls_ca");
    // IPv6 literals work in brackets.
    let c = ClusterConfig::from_toml("nodes = 1\ntransport = \"tcp\"\naddrs = [\"[::1]:7001\"]").unwrap();
    assert_eq!(c.node_host(1).as_deref(), Some("::1"));
}

#[test]
fn tls_paths_are_relative_to_dir_with_the_id_filled_in_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("dir = {:?}\n{}", dir.path(), TCP3.trim_start_matches("dir = \"/x\"\n"));
    let c = ClusterConfig::from_toml(&text).unwrap();
    let p = c.node_tls_paths(2);
    assert_eq!(p.cert, dir.path().join("certs/node-2.crt"));
    assert_eq!(p.key, dir.path().join("certs/node-2.key"));
    assert_eq!(p.ca, dir.path().join("certs/ca.crt"));
    assert_eq!(c.client_tls_paths().cert, dir.path().join("certs/client.crt"));
    let e = c.check_tls_files(&p).unwrap_err();
    assert_eq!(e.key(), Some("tls_ca"));
    assert!(e.to_string().contains("raft-supervisor certs"), "says how to make them: {e}");
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(&p.ca, "x").unwrap();
    std::fs::write(&p.cert, "x").unwrap();
    let e = c.check_tls_files(&p).unwrap_err();
    assert_eq!(e.key(), Some("tls_key"));
    assert!(e.to_string().contains("node-2.key"), "{e}");
    std::fs::write(&p.key, "x").unwrap();
    c.check_tls_files(&p).unwrap();
}

#[test]
fn tcp_cluster_id_is_the_same_on_hosts_with_different_dirs() {
    // Pretend hosts: each its own `dir`, the same `addrs`: one cluster.
    let host = |dir: &str, addrs: &str| {
        ClusterConfig::from_toml(&format!(
            "dir = \"{dir}\"\nnodes = 3\ntransport = \"tcp\"\naddrs = [{addrs}]\ninsecure = true"
        ))
        .unwrap()
    };
    let one = "\"10.0.0.1:7001\", \"10.0.0.2:7001\", \"10.0.0.3:7001\"";
    let a = host("/var/lib/raft", one);
    let b = host("/srv/raft-b", one);
    assert_eq!(a.cluster_id(), b.cluster_id());
    assert_eq!(a.cluster_id(), fnv1a(b"tcp:10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001"));
    // Other addresses: another cluster.
    let other = host("/var/lib/raft", "\"10.0.0.1:7001\", \"10.0.0.2:7001\", \"10.0.0.4:7001\"");
    assert_ne!(a.cluster_id(), other.cluster_id());
}
