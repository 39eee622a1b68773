//! The Libreswan file that GetVpnConnConfig hands out, proven by Libreswan
//! itself: the `vpcd` binary drives a strongSwan charon in one network
//! namespace; the customer's side is Libreswan's pluto in the other, set up
//! from the handed-out text exactly as its parts say.
//!
//! What this kernel lets it prove (it has no ESP, and Libreswan has no
//! userspace ESP as strongSwan's kernel-libipsec is): the file loads, the IKE SA is
//! established with vpcd's charon (PSK, proposal, identities, exchange
//! mode), and each SPD pair's Quick Mode proposal is accepted by both
//! daemons. Only the last step, pluto installing the ESP SA in the kernel,
//! fails ("Protocol not supported", or "Function not implemented" for
//! some ciphers), so no ping crosses: the strongSwan
//! peer test (tests/tunnel.rs) carries the pings.
//!
//! Needs root, strongSwan and Libreswan's extracted package (`bash
//! scripts/test.sh` sets them up). Under `CI=true` a missing piece fails the
//! test; elsewhere it is skipped with the reason printed.
//!
//! Network safety: pluto runs only inside the peer namespace the test bed
//! created, and is stopped by PID; vpcd's API is on 127.0.0.1.

mod e2e;

use std::time::{Duration, Instant};

use e2e::Vpcd;
use std::path::{Path, PathBuf};
use vpcd_dataplane::strongswan::StrongSwanDriver;

use vpcd_dataplane::testbed::{
    libreswan5_programs, libreswan_programs, Side, Testbed, TestbedConfig,
};

/// One setting family, as AddVpnConnEx takes it, and what both daemons
/// must report for it.
struct Family {
    label: &'static str,
    params: &'static [&'static str],
    /// pluto's summary of the IKE SA (`cipher=... integ=... group=...`).
    pluto_ike: &'static str,
    /// charon's IKE proposal as `swanctl --list-sas` prints it.
    charon_ike: &'static str,
    /// pluto's Quick Mode proposal (`proposal=... pfsgroup=...`).
    pluto_esp: &'static str,
    /// The ESP proposal charon selects.
    charon_esp: &'static str,
    /// (cloud net, peer net) of every SPD pair.
    pairs: &'static [(&'static str, &'static str)],
}

const FAMILIES: &[Family] = &[
    Family {
        label: "main mode, address identities, no PFS, one SPD rule",
        params: &[
            "userGwCidrBlock.0=10.200.0.0/24",
            "IKESet.propoEncryAlgorithm=aes-cbc-128",
            "IKESet.propoAuthenAlgorithm=sha",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=aes-cbc-128",
            "IPsecSet.integrityAlgorith=sha",
        ],
        pluto_ike: "cipher=AES_CBC_128 integ=HMAC_SHA1 group=MODP2048",
        charon_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        pluto_esp: "proposal=AES_CBC_128-HMAC_SHA1_96 pfsgroup=no-pfs",
        charon_esp: "ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ",
        pairs: &[("10.100.0.0/16", "10.200.0.0/24")],
    },
    Family {
        label: "aggressive mode, FQDN identities, PFS group 14, two SPD rules",
        params: &[
            r#"spdAcl={"10.100.0.0/24":["10.200.0.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#,
            "IKESet.exchangeMode=aggressive",
            "IKESet.localIdentity=fqdn",
            "IKESet.localFqdnName=vpn.cloud.example",
            "IKESet.remoteIdentity=fqdn",
            "IKESet.remoteFqdnName=office.example.net",
            "IKESet.propoEncryAlgorithm=aes-cbc-256",
            "IKESet.propoAuthenAlgorithm=sha",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=aes-cbc-256",
            "IPsecSet.integrityAlgorith=sha",
            "IPsecSet.pfsDhGroup=dh-group14",
        ],
        pluto_ike: "cipher=AES_CBC_256 integ=HMAC_SHA1 group=MODP2048",
        charon_ike: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        pluto_esp: "proposal=AES_CBC_256-HMAC_SHA1_96-MODP2048 pfsgroup=MODP2048",
        charon_esp: "ESP:AES_CBC_256/HMAC_SHA1_96/MODP_2048/NO_EXT_SEQ",
        pairs: &[
            ("10.100.0.0/24", "10.200.0.0/24"),
            ("10.100.1.0/24", "10.200.1.0/24"),
        ],
    },
    Family {
        label: "main mode, FQDN identities, 3DES/MD5, group 5, PFS group 5, ESP-NULL",
        params: &[
            "userGwCidrBlock.0=10.200.0.0/24",
            "IKESet.localIdentity=fqdn",
            "IKESet.localFqdnName=vpn.cloud.example",
            "IKESet.remoteIdentity=fqdn",
            "IKESet.remoteFqdnName=office.example.net",
            "IKESet.propoEncryAlgorithm=3des-cbc",
            "IKESet.propoAuthenAlgorithm=md5",
            "IKESet.dhGroupName=group5",
            "IPsecSet.encryptAlgorithm=null",
            "IPsecSet.integrityAlgorith=sha",
            "IPsecSet.pfsDhGroup=dh-group5",
        ],
        pluto_ike: "cipher=3DES_CBC_192 integ=HMAC_MD5 group=MODP1536",
        charon_ike: "3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1536",
        pluto_esp: "proposal=NULL-HMAC_SHA1_96-MODP1536 pfsgroup=MODP1536",
        charon_esp: "ESP:NULL/HMAC_SHA1_96/MODP_1536/NO_EXT_SEQ",
        pairs: &[("10.100.0.0/16", "10.200.0.0/24")],
    },
    Family {
        label: "aggressive mode, address identities, no PFS, three SPD pairs",
        params: &[
            r#"spdAcl={"10.100.0.0/24":["10.200.0.0/24","10.200.1.0/24"],"10.100.1.0/24":["10.200.1.0/24"]}"#,
            "IKESet.exchangeMode=aggressive",
            "IKESet.propoEncryAlgorithm=aes-cbc-192",
            "IKESet.propoAuthenAlgorithm=md5",
            "IKESet.dhGroupName=group14",
            "IPsecSet.encryptAlgorithm=3des-cbc",
            "IPsecSet.integrityAlgorith=md5",
        ],
        pluto_ike: "cipher=AES_CBC_192 integ=HMAC_MD5 group=MODP2048",
        charon_ike: "AES_CBC-192/HMAC_MD5_96/PRF_HMAC_MD5/MODP_2048",
        pluto_esp: "proposal=3DES_CBC-HMAC_MD5_96 pfsgroup=no-pfs",
        charon_esp: "ESP:3DES_CBC/HMAC_MD5_96/NO_EXT_SEQ",
        pairs: &[
            ("10.100.0.0/24", "10.200.0.0/24"),
            ("10.100.0.0/24", "10.200.1.0/24"),
            ("10.100.1.0/24", "10.200.1.0/24"),
        ],
    },
];

/// The test bed and Libreswan `major`'s programs (4: Debian 12's, 5:
/// Debian 13's), or `None` after printing why (a panic under CI).
fn setup(major: u8) -> Option<(Testbed, PathBuf)> {
    let programs = match major {
        4 => libreswan_programs(),
        _ => libreswan5_programs(),
    };
    let programs = match programs {
        Ok(p) => p,
        Err(why) => {
            vpcd_types::testing::skip(&format!("Libreswan {major} peer test"), &why);
            return None;
        }
    };
    Some((Testbed::start_or_skip(TestbedConfig::default())?, programs))
}

#[test]
fn libreswan_peer_establishes_every_setting_family_from_the_handed_out_file() {
    let Some((tb, programs)) = setup(4) else {
        return;
    };
    run_families(tb, (4, &programs), FAMILIES.iter());
}

/// One test bed and one vpcd; for each family in turn: AddVpnConnEx, the
/// Libreswan file GetVpnConnConfig hands out, pluto (from `programs`)
/// started with it, the evidence polled for, pluto stopped, the
/// connection deleted.
fn run_families<'a>(
    mut tb: Testbed,
    (major, programs): (u8, &Path),
    families: impl Iterator<Item = &'a Family>,
) {
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let vpc = v.call("CreateVpc", &["vpcName=lsw", "cidrBlock=10.100.0.0/16"]);
    let vpc = vpc["uniqVpcId"].as_str().expect("vpc").to_owned();
    let gw = v.call(
        "RunVpnGw",
        &[&format!("vpcId={vpc}"), "name=gw", "bandwidth=5"],
    );
    let gw = gw["data"]["vpnGwId"].as_str().expect("gw").to_owned();
    let user = v.call(
        "AddUserGw",
        &["userGwName=office", "userGwAddr=198.51.100.1"],
    );
    let user = user["userGwId"].as_str().expect("user gw").to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();

    for family in families {
        eprintln!("---- {}", family.label);
        let base = [
            format!("vpcId={vpc}"),
            format!("vpnGwId={gw}"),
            format!("userGwId={user}"),
            "preSharedKey=lsw-Pre-Shared-key".to_owned(),
        ];
        let mut params: Vec<&str> = base.iter().map(String::as_str).collect();
        params.extend(family.params);
        let add = v.call("AddVpnConnEx", &params);
        assert_eq!(add["code"], 0, "{}: {add}", family.label);
        let task = add["data"]["taskId"].as_i64().unwrap();
        v.wait_task(task);
        let t = v.call("DescribeVpcTaskResult", &[&format!("taskId={task}")]);
        let conn = t["data"]["output"]["unVpnConnId"]
            .as_str()
            .unwrap()
            .to_owned();

        let text = v.peer_config_for(&conn, "Libreswan");
        let charon_mark = tb.charon_log(Side::Cloud).len();
        tb.start_pluto_from(programs, &text).unwrap_or_else(|e| {
            panic!("{}: pluto starts with the file: {e}\n{text}", family.label)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Seen::default();
        loop {
            let pluto = tb.pluto_log();
            let charon = tb.charon_log(Side::Cloud)[charon_mark..].to_owned();
            seen.poll(&tb, &rt, &driver, &conn);
            let listed = seen.listed();
            let missing = missing_evidence(
                family,
                major,
                &pluto,
                &charon,
                seen.established,
                &listed,
                &conn,
            );
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: after 30 s, not seen: {missing:#?}\n--- the file\n{text}\n--- pluto\n{pluto}\n\
                 --- charon (list-sas)\n{listed}\n--- charon log\n{charon}",
                family.label
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{}: established and Quick Mode accepted", family.label);
        tb.stop_pluto();
        v.delete_conn(&vpc, &gw, &conn);
    }
    tb.teardown();
}

/// What is not yet proven for `family` (empty once everything is):
/// - pluto loaded every conn of the file, established the IKE SA with the
///   expected algorithms, proposed the expected Quick Mode for every SPD
///   pair and got as far as installing its ESP SA, the one step this kernel
///   cannot do (4.x: when pluto initiated, that step follows charon's
///   answer; when charon did, it follows pluto's acceptance; 5.x installs
///   the inbound SA as soon as it sends or accepts a proposal, so there
///   charon's log below is what shows the exchange was accepted); and no
///   other error;
/// - charon (VICI) held the connection's IKE SA ESTABLISHED with the
///   expected proposal, and its log shows each pair's Quick Mode matched
///   to a child config with the expected ESP proposal, and answered.
fn missing_evidence(
    family: &Family,
    major: u8,
    pluto: &str,
    charon: &str,
    established: bool,
    listed: &str,
    conn: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            missing.push(what);
        }
    };
    let conn_line = |n: usize, needle: &str| {
        pluto
            .lines()
            .any(|l| l.contains(&format!("\"vpcd-{n}\"")) && l.contains(needle))
    };
    // 4.x says "IKE SA established", 5.x "ISAKMP SA established".
    let ike = format!("SA established {{auth=PRESHARED_KEY {}}}", family.pluto_ike);
    need(pluto.contains(&ike), format!("pluto: {ike}"));
    for n in 1..=family.pairs.len() {
        need(
            conn_line(n, "added IKEv1 connection"),
            format!("pluto: vpcd-{n} added"),
        );
        need(
            conn_line(n, family.pluto_esp),
            format!("pluto: vpcd-{n} proposes {}", family.pluto_esp),
        );
        let install = if major == 4 {
            conn_line(n, "STATE_QUICK_I1 had internal error")
                || conn_line(n, "STATE_QUICK_R0 had internal error")
        } else {
            conn_line(n, "netlink response for Add SA esp.")
        };
        need(
            install,
            format!("pluto: vpcd-{n} reaches the ESP SA install"),
        );
    }
    for l in pluto.lines().filter(|l| l.contains("ERROR")) {
        need(
            kernel_refusal(l),
            format!("pluto: no error but the kernel refusing the ESP SA; saw {l}"),
        );
    }
    need(established, format!("charon: {conn} ESTABLISHED"));
    need(
        listed.contains(family.charon_ike),
        format!("charon: IKE proposal {}", family.charon_ike),
    );
    for (cloud, peer) in family.pairs {
        let ts = format!("looking for a child config for {cloud} === {peer}");
        need(charon.contains(&ts), format!("charon: {ts}"));
    }
    let selected = format!("selected proposal: {}", family.charon_esp);
    need(
        charon.matches(&selected).count() >= family.pairs.len(),
        format!("charon: {selected} (once per pair)"),
    );
    need(
        charon.matches("generating QUICK_MODE response").count() >= family.pairs.len(),
        "charon: a Quick Mode response per pair".to_owned(),
    );
    missing
}

/// Whether a pluto `ERROR` line is this kernel refusing what it cannot do:
/// adding an ESP SA ("Protocol not supported": no ESP at all; "Function not
/// implemented" for some ciphers), then cleaning up the policies and SAs
/// that never came to be, or (5.x, at start) an XFRM interface.
fn kernel_refusal(line: &str) -> bool {
    [
        "netlink response for Add SA esp.",
        "netlink response for Del SA esp.",
        "XFRM_MSG_DELPOLICY delete response",
        "xfrmi is not supported",
    ]
    .iter()
    .any(|k| line.contains(k))
}

/// What charon reported over VICI at any poll so far: the peer's failing
/// ESP installs make charon's CHILD SAs, and after unanswered Quick Mode
/// retransmits even its IKE SA, come and go.
#[derive(Default)]
struct Seen {
    established: bool,
    /// Every distinct line `swanctl --list-sas` printed.
    lines: std::collections::BTreeSet<String>,
}

impl Seen {
    fn poll(
        &mut self,
        tb: &Testbed,
        rt: &tokio::runtime::Runtime,
        driver: &StrongSwanDriver,
        conn: &str,
    ) {
        let sas = rt.block_on(driver.list_sas()).unwrap();
        self.established |= sas
            .iter()
            .any(|sa| sa.name.as_str() == conn && sa.state == "ESTABLISHED");
        self.lines
            .extend(swanctl_list_sas(tb).lines().map(str::to_owned));
    }

    fn listed(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// `swanctl --list-sas` of the cloud charon (VICI), for the algorithms.
fn swanctl_list_sas(tb: &Testbed) -> String {
    let out = std::process::Command::new("swanctl")
        .args(["--list-sas", "--uri", &tb.vici_uri(Side::Cloud)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A setting family made through API 3.0 (IKEv2 exists only there, and so
/// do SHA-2, AES-GCM and DH groups 15-21), and what both daemons must
/// report for it.
struct Family3 {
    label: &'static str,
    /// IKEv2 (else IKEv1: judged as [`Family`] is).
    ikev2: bool,
    /// CreateVpnConnection's `SecurityPolicyDatabases`,
    /// `IKEOptionsSpecification` and `IPSECOptionsSpecification` (JSON;
    /// `@FQDN_IDS` stands for [`FQDN_IDS`]).
    request: &'static str,
    /// pluto's summary of the IKE SA: IKEv1, `cipher=... integ=...
    /// group=...`; IKEv2, the `{cipher=... integ=... prf=... group=...}`
    /// of its IKE_SA_INIT.
    pluto_ike: &'static str,
    /// IKEv2: how pluto names the authenticated peer (`ID_FQDN '@...'`).
    /// IKEv1: pluto's Quick Mode proposal (`proposal=... pfsgroup=...`).
    pluto_peer_or_esp: &'static str,
    /// charon's IKE proposal as `swanctl --list-sas` prints it.
    charon_ike: &'static str,
    /// charon's ESP proposal: IKEv2, as `swanctl --list-sas` prints it
    /// (without a DH group); IKEv1, as its log's `selected proposal:`.
    charon_esp: &'static str,
    /// IKEv2 with PFS: the DH group a CHILD SA made by CREATE_CHILD_SA
    /// carries (the one IKE_AUTH makes has none: IKE_AUTH has no key
    /// exchange), so these families have two SPD pairs or more.
    charon_pfs: Option<&'static str>,
    /// (cloud net, peer net) of every SPD pair.
    pairs: &'static [(&'static str, &'static str)],
}

/// Written `@FQDN_IDS` in [`Family3::request`].
const FQDN_IDS: &str = r#""LocalIdentity": "FQDN", "LocalFqdnName": "vpn.cloud.example",
    "RemoteIdentity": "FQDN", "RemoteFqdnName": "office.example.net""#;

/// Together with [`FAMILIES`]: IKEv2 with address and FQDN identities,
/// with and without PFS, one to three SPD pairs, and every algorithm
/// family API 3.0 adds (SHA-2 for IKE and ESP, AES-GCM for IKE and ESP, DH
/// groups 15, 16 and 19-21 for IKE and PFS) that Libreswan 4.10 can do;
/// and one IKEv1 family with the newer algorithms IKEv1 allows there.
fn families3() -> Vec<Family3> {
    vec![
        Family3 {
            label: "IKEv2, address identities, no PFS, one SPD rule, SHA-1 IKE, SHA-256 ESP",
            ikev2: true,
            request: r#"{"SecurityPolicyDatabases": [{"LocalCidrBlock": "10.100.0.0/16",
                    "RemoteCidrBlock": ["10.200.0.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES-CBC-128", "PropoAuthenAlgorithm": "SHA",
                    "DhGroupName": "GROUP14"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES-CBC-128",
                    "IntegrityAlgorith": "SHA-256", "PfsDhGroup": "NULL"}}"#,
            pluto_ike: "{cipher=AES_CBC_128 integ=HMAC_SHA1_96 prf=HMAC_SHA1 group=MODP2048}",
            pluto_peer_or_esp: "ID_IPV4_ADDR '203.0.113.1'",
            charon_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
            charon_esp: "ESP:AES_CBC-128/HMAC_SHA2_256_128",
            charon_pfs: None,
            pairs: &[("10.100.0.0/16", "10.200.0.0/24")],
        },
        Family3 {
            label: "IKEv2, FQDN identities, SHA-256, group 15, PFS group 16, two SPD rules",
            ikev2: true,
            request: r#"{"SecurityPolicyDatabases": [
                    {"LocalCidrBlock": "10.100.0.0/24", "RemoteCidrBlock": ["10.200.0.0/24"]},
                    {"LocalCidrBlock": "10.100.1.0/24", "RemoteCidrBlock": ["10.200.1.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES-CBC-256", "PropoAuthenAlgorithm": "SHA-256",
                    "DhGroupName": "GROUP15", @FQDN_IDS},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES-CBC-256",
                    "IntegrityAlgorith": "SHA-512", "PfsDhGroup": "DH-GROUP16"}}"#,
            pluto_ike:
                "{cipher=AES_CBC_256 integ=HMAC_SHA2_256_128 prf=HMAC_SHA2_256 group=MODP3072}",
            pluto_peer_or_esp: "ID_FQDN '@vpn.cloud.example'",
            charon_ike: "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_3072",
            charon_esp: "ESP:AES_CBC-256/HMAC_SHA2_512_256",
            charon_pfs: Some("MODP_4096"),
            pairs: &[
                ("10.100.0.0/24", "10.200.0.0/24"),
                ("10.100.1.0/24", "10.200.1.0/24"),
            ],
        },
        Family3 {
            label: "IKEv2, address identities, AES-128-GCM/SHA-512/group 20, ESP AES-192-GCM, \
                    PFS group 21, three SPD pairs",
            ikev2: true,
            request: r#"{"SecurityPolicyDatabases": [
                    {"LocalCidrBlock": "10.100.0.0/24",
                        "RemoteCidrBlock": ["10.200.0.0/24", "10.200.1.0/24"]},
                    {"LocalCidrBlock": "10.100.1.0/24", "RemoteCidrBlock": ["10.200.1.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES128GCM128", "PropoAuthenAlgorithm": "SHA-512",
                    "DhGroupName": "GROUP20"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES192GCM128",
                    "PfsDhGroup": "DH-GROUP21"}}"#,
            pluto_ike: "{cipher=AES_GCM_16_128 integ=n/a prf=HMAC_SHA2_512 group=DH20}",
            pluto_peer_or_esp: "ID_IPV4_ADDR '203.0.113.1'",
            charon_ike: "AES_GCM_16-128/PRF_HMAC_SHA2_512/ECP_384",
            charon_esp: "ESP:AES_GCM_16-192",
            charon_pfs: Some("ECP_521"),
            pairs: &[
                ("10.100.0.0/24", "10.200.0.0/24"),
                ("10.100.0.0/24", "10.200.1.0/24"),
                ("10.100.1.0/24", "10.200.1.0/24"),
            ],
        },
        Family3 {
            label: "IKEv2, FQDN identities, AES-256-GCM/SHA-256/group 19, ESP AES-128-GCM, \
                    PFS group 20, one rule to two nets",
            ikev2: true,
            request: r#"{"SecurityPolicyDatabases": [{"LocalCidrBlock": "10.100.0.0/24",
                    "RemoteCidrBlock": ["10.200.0.0/24", "10.200.1.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "AES256GCM128", "PropoAuthenAlgorithm": "SHA-256",
                    "DhGroupName": "GROUP19", @FQDN_IDS},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES128GCM128",
                    "PfsDhGroup": "DH-GROUP20"}}"#,
            pluto_ike: "{cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_256 group=DH19}",
            pluto_peer_or_esp: "ID_FQDN '@vpn.cloud.example'",
            charon_ike: "AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256",
            charon_esp: "ESP:AES_GCM_16-128",
            charon_pfs: Some("ECP_384"),
            pairs: &[
                ("10.100.0.0/24", "10.200.0.0/24"),
                ("10.100.0.0/24", "10.200.1.0/24"),
            ],
        },
        Family3 {
            label: "IKEv2, address identities, 3DES/MD5/group 5, ESP-NULL/SHA-384, PFS group 5, \
                    two SPD rules",
            ikev2: true,
            request: r#"{"SecurityPolicyDatabases": [
                    {"LocalCidrBlock": "10.100.0.0/24", "RemoteCidrBlock": ["10.200.0.0/24"]},
                    {"LocalCidrBlock": "10.100.1.0/24", "RemoteCidrBlock": ["10.200.1.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV2",
                    "PropoEncryAlgorithm": "3DES-CBC", "PropoAuthenAlgorithm": "MD5",
                    "DhGroupName": "GROUP5"},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "NULL",
                    "IntegrityAlgorith": "SHA-384", "PfsDhGroup": "DH-GROUP5"}}"#,
            pluto_ike: "{cipher=3DES_CBC_192 integ=HMAC_MD5_96 prf=HMAC_MD5 group=MODP1536}",
            pluto_peer_or_esp: "ID_IPV4_ADDR '203.0.113.1'",
            charon_ike: "3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1536",
            charon_esp: "ESP:NULL/HMAC_SHA2_384_192",
            charon_pfs: Some("MODP_1536"),
            pairs: &[
                ("10.100.0.0/24", "10.200.0.0/24"),
                ("10.100.1.0/24", "10.200.1.0/24"),
            ],
        },
        Family3 {
            label: "IKEv1 main mode, FQDN identities, SHA-512/group 16, ESP AES-256-GCM, \
                    PFS group 15, two SPD rules",
            ikev2: false,
            request: r#"{"SecurityPolicyDatabases": [
                    {"LocalCidrBlock": "10.100.0.0/24", "RemoteCidrBlock": ["10.200.0.0/24"]},
                    {"LocalCidrBlock": "10.100.1.0/24", "RemoteCidrBlock": ["10.200.1.0/24"]}],
                "IKEOptionsSpecification": {"IKEVersion": "IKEV1", "ExchangeMode": "MAIN",
                    "PropoEncryAlgorithm": "AES-CBC-256", "PropoAuthenAlgorithm": "SHA-512",
                    "DhGroupName": "GROUP16", @FQDN_IDS},
                "IPSECOptionsSpecification": {"EncryptAlgorithm": "AES256GCM128",
                    "PfsDhGroup": "DH-GROUP15"}}"#,
            pluto_ike: "cipher=AES_CBC_256 integ=HMAC_SHA2_512 group=MODP4096",
            pluto_peer_or_esp: "proposal=AES_GCM_16_256-NONE-MODP3072 pfsgroup=MODP3072",
            charon_ike: "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/MODP_4096",
            charon_esp: "ESP:AES_GCM_16_256/MODP_3072/NO_EXT_SEQ",
            charon_pfs: None,
            pairs: &[
                ("10.100.0.0/24", "10.200.0.0/24"),
                ("10.100.1.0/24", "10.200.1.0/24"),
            ],
        },
    ]
}

/// One test bed and one vpcd (in parallel with the IKEv1 test's own); for
/// each family in turn: CreateVpnConnection through the 3.0 SDK, the
/// Libreswan file GetVpnConnConfig hands out, pluto started with it, the
/// evidence polled for, pluto stopped, the connection deleted.
#[test]
fn libreswan_peer_establishes_every_api3_setting_family() {
    let Some((tb, programs, py)) = setup3(4) else {
        return;
    };
    run_families3(tb, (4, &programs), &py, families3());
}

/// [`setup`] and the Python with the 3.0 SDK.
fn setup3(major: u8) -> Option<(Testbed, PathBuf, PathBuf)> {
    let py = match e2e::venv_python("tencentcloud.vpc") {
        Ok(p) => p,
        Err(why) => {
            vpcd_types::testing::skip(&format!("Libreswan {major} API 3.0 peer test"), &why);
            return None;
        }
    };
    let (tb, programs) = setup(major)?;
    Some((tb, programs, py))
}

/// [`run_families`] for families made through API 3.0.
fn run_families3(
    mut tb: Testbed,
    (major, programs): (u8, &Path),
    py: &Path,
    families: Vec<Family3>,
) {
    let dir = tempfile::tempdir().unwrap();
    let v = Vpcd::start(&dir.path().join("vpcd"), &tb.vici_uri(Side::Cloud), &[]);
    let vpc = v.call("CreateVpc", &["vpcName=lsw3", "cidrBlock=10.100.0.0/16"]);
    let vpc = vpc["uniqVpcId"].as_str().expect("vpc").to_owned();
    let gw = v.call(
        "RunVpnGw",
        &[&format!("vpcId={vpc}"), "name=gw", "bandwidth=5"],
    );
    let gw = gw["data"]["vpnGwId"].as_str().expect("gw").to_owned();
    let user = v.call(
        "AddUserGw",
        &["userGwName=office", "userGwAddr=198.51.100.1"],
    );
    let user = user["userGwId"].as_str().expect("user gw").to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = StrongSwanDriver::new(&tb.vici_uri(Side::Cloud)).unwrap();

    for family in families {
        eprintln!("---- {}", family.label);
        let mut params: serde_json::Value =
            serde_json::from_str(&family.request.replace("@FQDN_IDS", FQDN_IDS))
                .unwrap_or_else(|e| panic!("{}: {e}", family.label));
        for (k, val) in [
            ("VpcId", &vpc),
            ("VpnGatewayId", &gw),
            ("CustomerGatewayId", &user),
        ] {
            params[k] = serde_json::json!(val);
        }
        params["VpnConnectionName"] = serde_json::json!("lsw3");
        params["PreShareKey"] = serde_json::json!("lsw-Pre-Shared-key");
        let created = v.sdk3(py, "CreateVpnConnection", params);
        let conn = created["VpnConnection"]["VpnConnectionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = v.call("DescribeVpnConn", &[&format!("vpnConnId={conn}")]);
            if c["data"][0]["vpcConnStatus"] == 6 {
                break;
            }
            assert!(Instant::now() < deadline, "{conn} not running: {c}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = v.peer_config_for(&conn, "Libreswan");
        assert_eq!(
            (
                text.contains("\tikev2=insist\n"),
                text.contains("config setup")
            ),
            (family.ikev2, !family.ikev2),
            "{}: {text}",
            family.label
        );
        let charon_mark = tb.charon_log(Side::Cloud).len();
        tb.start_pluto_from(programs, &text).unwrap_or_else(|e| {
            panic!("{}: pluto starts with the file: {e}\n{text}", family.label)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Seen::default();
        loop {
            let pluto = tb.pluto_log();
            let charon = tb.charon_log(Side::Cloud)[charon_mark..].to_owned();
            seen.poll(&tb, &rt, &driver, &conn);
            let listed = seen.listed();
            let missing = if family.ikev2 {
                missing_ikev2_evidence(&family, &pluto, &charon, seen.established, &listed)
            } else {
                let v1 = Family {
                    label: family.label,
                    params: &[],
                    pluto_ike: family.pluto_ike,
                    charon_ike: family.charon_ike,
                    pluto_esp: family.pluto_peer_or_esp,
                    charon_esp: family.charon_esp,
                    pairs: family.pairs,
                };
                missing_evidence(
                    &v1,
                    major,
                    &pluto,
                    &charon,
                    seen.established,
                    &listed,
                    &conn,
                )
            };
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: after 30 s, not seen: {missing:#?}\n--- the file\n{text}\n--- pluto\n{pluto}\n\
                 --- charon (list-sas)\n{listed}\n--- charon log\n{charon}",
                family.label
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{}: established and CHILD SAs accepted", family.label);
        tb.stop_pluto();
        v.delete_conn(&vpc, &gw, &conn);
    }
    tb.teardown();
}

/// What is not yet proven for an IKEv2 `family` (empty once everything is):
/// - pluto loaded every conn as IKEv2, established the IKE SA with the
///   expected algorithms and authenticated the gateway by its identity;
/// - each SPD pair's CHILD SA was accepted by both daemons: charon
///   installed it (userspace ESP; pluto's proposal in IKE_AUTH or
///   CREATE_CHILD_SA), or pluto chose charon's CREATE_CHILD_SA proposal
///   for that conn; either way pluto then reached the ESP SA install,
///   which this kernel refuses; and pluto logged no other error;
/// - charon (VICI) held an ESTABLISHED IKEv2 SA with the expected
///   proposal, and selected the expected ESP proposal (with PFS, one with
///   the group: charon's log, or pluto choosing charon's proposal with it).
fn missing_ikev2_evidence(
    family: &Family3,
    pluto: &str,
    charon: &str,
    established: bool,
    listed: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            missing.push(what);
        }
    };
    let conn_lines = |n: usize| {
        pluto
            .lines()
            .filter(move |l| l.contains(&format!("\"vpcd-{n}\"")))
    };
    let conn_line = |n: usize, needle: &str| conn_lines(n).any(|l| l.contains(needle));
    need(
        pluto.contains(family.pluto_ike),
        format!("pluto: IKE SA {}", family.pluto_ike),
    );
    let authenticated = format!(
        "established IKE SA; authenticated peer using authby=secret and {}",
        family.pluto_peer_or_esp
    );
    need(
        pluto.contains(&authenticated),
        format!("pluto: {authenticated}"),
    );
    for (i, (cloud, peer)) in family.pairs.iter().enumerate() {
        let n = i + 1;
        need(
            conn_line(n, "added IKEv2 connection"),
            format!("pluto: vpcd-{n} added"),
        );
        let installed_by_charon = charon.contains(&format!("and TS {cloud} === {peer}\n"));
        let chosen_by_pluto = conn_line(n, "chosen from remote proposals");
        need(
            installed_by_charon || chosen_by_pluto,
            format!("vpcd-{n}: CHILD SA {cloud} === {peer} installed by charon or chosen by pluto"),
        );
        need(
            conn_line(n, "netlink response for Add SA esp."),
            format!("pluto: vpcd-{n} reaches the ESP SA install"),
        );
    }
    for l in pluto.lines().filter(|l| l.contains("ERROR")) {
        need(
            kernel_refusal(l),
            format!("pluto: no error but the kernel refusing the ESP SA; saw {l}"),
        );
    }
    need(
        established
            && listed.contains("ESTABLISHED, IKEv2, ")
            && listed.contains(family.charon_ike),
        format!("charon: IKEv2 SA with {}", family.charon_ike),
    );
    // The log spells `AES_CBC_128` where list-sas has `AES_CBC-128`.
    let esp = format!(
        "selected proposal: {}/",
        family.charon_esp.replacen('-', "_", 1)
    );
    need(charon.contains(&esp), format!("charon: {esp}"));
    if let Some(group) = family.charon_pfs {
        let by_charon = charon
            .lines()
            .any(|l| l.contains(&esp) && l.contains(&format!("/{group}/")));
        let pluto_group = format!("DH={}", group.replace("MODP_", "MODP"));
        let by_pluto = pluto
            .lines()
            .any(|l| l.contains("chosen from remote proposals") && l.contains(&pluto_group));
        need(
            by_charon || by_pluto,
            format!("a CHILD SA with PFS {group} selected by charon or chosen by pluto"),
        );
    }
    missing
}

/// Libreswan 5 (Debian 13's 5.2) with the same files: an IKEv1 family of
/// each exchange mode, identity kind and PFS choice, made through v2 and
/// judged as for 4.10 (scripts/libreswan5/README.md says how 5.2 runs
/// here).
#[test]
fn libreswan5_peer_establishes_ikev1_from_the_handed_out_file() {
    let Some((tb, programs)) = setup(5) else {
        return;
    };
    run_families(tb, (5, &programs), FAMILIES[..2].iter());
}

/// Libreswan 5 with IKEv2 families made through 3.0: with and without
/// PFS, address and FQDN identities, SHA-2, AES-GCM and elliptic-curve
/// groups.
#[test]
fn libreswan5_peer_establishes_ikev2_from_the_handed_out_file() {
    let Some((tb, programs, py)) = setup3(5) else {
        return;
    };
    let mut families = families3();
    families.retain(|f| f.ikev2 && (f.label.contains("FQDN") || f.charon_pfs.is_none()));
    run_families3(tb, (5, &programs), &py, families);
}
