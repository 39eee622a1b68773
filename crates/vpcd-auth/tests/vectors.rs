//! Known-answer tests: the vendor's worked examples (reference §3) and vectors produced by the
//! official client itself, so the implementation is checked against code we did not write.

use vpcd_auth::{encode_form, sign, string_to_sign, verify, SignatureMethod, Signer};

const PATH: &str = "/v2/index.php";
const VENDOR_KEY: &[u8] = b"Gu5t9xGARNpq86cd98joQYCN3Cozk1qA";
const VENDOR_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA";

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn borrowed(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn check(key: &[u8], method: SignatureMethod, to_sign: &str, expected: &str) {
    assert_eq!(sign(key, method, to_sign), expected);
    assert!(verify(key, method, to_sign, expected));
}

#[test]
fn vendor_describe_instances_sha256_and_sha1() {
    for (method, expected) in [
        (
            SignatureMethod::HmacSha256,
            "0EEm/HtGRr/VJXTAD9tYMth1Bzm3lLHz5RCDv1GdM8s=",
        ),
        (SignatureMethod::HmacSha1, "nPVnY6njQmwQ8ciqbPl5Qe+Oru4="),
    ] {
        // Listed out of order on purpose: sorting is the function's job.
        let params = [
            ("Timestamp", "1465185768"),
            ("SignatureMethod", method.as_param()),
            ("Action", "DescribeInstances"),
            ("SecretId", VENDOR_ID),
            ("Region", "ap-guangzhou"),
            ("Nonce", "11886"),
            ("InstanceIds.0", "ins-09dx96dg"),
        ];
        let to_sign = string_to_sign("GET", "cvm.api.qcloud.com", PATH, &params, false);
        assert_eq!(
            to_sign,
            format!(
                "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg\
                 &Nonce=11886&Region=ap-guangzhou&SecretId={VENDOR_ID}&SignatureMethod={}\
                 &Timestamp=1465185768",
                method.as_param()
            )
        );
        check(VENDOR_KEY, method, &to_sign, expected);
    }
}

const ADD_VPN_CONN_EX_PARAMS: [(&str, &str); 6] = [
    ("vpcId", "vpc-amhnnao5"),
    ("userGwId", "cgw-e098slul"),
    ("vpnGwId", "vpngw-dystbrkv"),
    ("userGwCidrBlock.0", "10.56.20.1/24"),
    ("preSharedKey", "dgdgd33"),
    ("vpnConnName", "conn 1"),
];

#[test]
fn vendor_add_vpn_conn_ex_get_and_post() {
    let signer = Signer {
        secret_id: VENDOR_ID,
        secret_key: VENDOR_KEY,
        method: SignatureMethod::HmacSha256,
    };
    let sorted_pairs = format!(
        "Action=AddVpnConnEx&Nonce=11886&Region=gz&SecretId={VENDOR_ID}&SignatureMethod=HmacSHA256\
         &Timestamp=1465185768&preSharedKey=dgdgd33&userGwCidrBlock.0=10.56.20.1/24&userGwId=cgw-e098slul\
         &vpcId=vpc-amhnnao5&vpnConnName=conn 1&vpnGwId=vpngw-dystbrkv"
    );
    for (http, expected) in [
        ("GET", "7DqIR5I+LExystRY76NcDMA77DyRvkdl6l0P/5yfbn0="),
        ("POST", "WxLyV1IkpkYwjvWw4f6xqaCx8oDhGggV1AAO82aCm+8="),
    ] {
        let signed = signer.signed_params(
            http,
            "vpc.api.qcloud.com",
            PATH,
            "AddVpnConnEx",
            "gz",
            1_465_185_768,
            11886,
            &owned(&ADD_VPN_CONN_EX_PARAMS),
        );
        let (last_key, signature) = signed.last().expect("signature appended");
        assert_eq!(last_key, "Signature");
        assert_eq!(signature, expected, "{http}");

        // The server side: rebuild the string from what arrived (Signature included, as received).
        let to_sign = string_to_sign(
            http,
            "vpc.api.qcloud.com",
            PATH,
            &borrowed(&signed),
            http == "POST",
        );
        assert_eq!(
            to_sign,
            format!("{http}vpc.api.qcloud.com/v2/index.php?{sorted_pairs}")
        );
        check(VENDOR_KEY, SignatureMethod::HmacSha256, &to_sign, expected);
    }
}

/// One request signed by the official SDK.
struct SdkVector {
    secret_key: &'static str,
    host: &'static str,
    http: &'static str,
    method: SignatureMethod,
    params: &'static [(&'static str, &'static str)],
    /// The exact bytes the SDK passed to `hmac.new`, captured by wrapping it.
    to_sign: &'static str,
    signature: &'static str,
    /// `urllib.parse.urlencode(params)`, as the SDK sends the request.
    form: &'static str,
}

// Computed with qcloudapi-sdk-python 2.0.15 Sign.make (Python 3.11):
//   Sign(secret_id, secret_key).make(host, "/v2/index.php", dict(params), http, signature_method)
// with `hmac.new` wrapped to capture the message, and `urlencode(params)` for the form body.
const SDK_VECTORS: &[SdkVector] = &[
    SdkVector {
        secret_key: "Gu5t9xGARNpq86cd98joQYCN3Cozk1qA",
        host: "vpc.api.qcloud.com",
        http: "GET",
        method: SignatureMethod::HmacSha1,
        params: &[
            ("Action", "AddVpnConnEx"),
            ("Region", "ap-guangzhou"),
            ("Timestamp", "1700000000"),
            ("Nonce", "9223372036854775807"),
            ("SecretId", VENDOR_ID),
            ("SignatureMethod", "HmacSHA1"),
            ("RequestClient", "SDK_PYTHON_2.0.15"),
            ("vpnConnName", "连接 1 + ü/é & = %20 🚀"),
            ("preSharedKey", "p@ss w+rd&x=y%2F/"),
            ("userGwCidrBlock_0", "10.0.0.0/24"),
            ("userGwCidrBlock.1", "192.0.2.0/24"),
            ("note", "@kept on GET"),
        ],
        to_sign: "GETvpc.api.qcloud.com/v2/index.php?Action=AddVpnConnEx&Nonce=9223372036854775807\
                  &Region=ap-guangzhou&RequestClient=SDK_PYTHON_2.0.15\
                  &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA1&Timestamp=1700000000\
                  &note=@kept on GET&preSharedKey=p@ss w+rd&x=y%2F/&userGwCidrBlock.0=10.0.0.0/24\
                  &userGwCidrBlock.1=192.0.2.0/24&vpnConnName=连接 1 + ü/é & = %20 🚀",
        signature: "Ow9Mgf1a0+/VCKrrJU9IR0lxyRc=",
        form: "Action=AddVpnConnEx&Region=ap-guangzhou&Timestamp=1700000000&Nonce=9223372036854775807\
               &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA1\
               &RequestClient=SDK_PYTHON_2.0.15\
               &vpnConnName=%E8%BF%9E%E6%8E%A5+1+%2B+%C3%BC%2F%C3%A9+%26+%3D+%2520+%F0%9F%9A%80\
               &preSharedKey=p%40ss+w%2Brd%26x%3Dy%252F%2F&userGwCidrBlock_0=10.0.0.0%2F24\
               &userGwCidrBlock.1=192.0.2.0%2F24&note=%40kept+on+GET",
    },
    SdkVector {
        secret_key: "sëcret/+=Κλειδί",
        host: "127.0.0.1:8443",
        http: "POST",
        method: SignatureMethod::HmacSha256,
        params: &[
            ("Action", "AddVpnConnEx"),
            ("Region", "gz"),
            ("Timestamp", "1465185768"),
            ("Nonce", "11886"),
            ("SecretId", VENDOR_ID),
            ("SignatureMethod", "HmacSHA256"),
            ("vpnConnName", "naïve – “quoted” name"),
            ("preSharedKey", "a+b=c&d%e/f g"),
            ("ikeSet_exchangeMode", "main"),
            ("attachment", "@/etc/passwd"),
            ("comment", "not @ first"),
            ("X_12", "twelve"),
            ("X.2", "two"),
        ],
        to_sign: "POST127.0.0.1:8443/v2/index.php?Action=AddVpnConnEx&Nonce=11886&Region=gz\
                  &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256\
                  &Timestamp=1465185768&X.12=twelve&X.2=two&comment=not @ first&ikeSet.exchangeMode=main\
                  &preSharedKey=a+b=c&d%e/f g&vpnConnName=naïve – “quoted” name",
        signature: "1HvleJ1YJh+vKLudj9+1aZPvyOoGVGe5MXOZBShehIs=",
        form: "Action=AddVpnConnEx&Region=gz&Timestamp=1465185768&Nonce=11886\
               &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256\
               &vpnConnName=na%C3%AFve+%E2%80%93+%E2%80%9Cquoted%E2%80%9D+name\
               &preSharedKey=a%2Bb%3Dc%26d%25e%2Ff+g&ikeSet_exchangeMode=main\
               &attachment=%40%2Fetc%2Fpasswd&comment=not+%40+first&X_12=twelve&X.2=two",
    },
    SdkVector {
        secret_key: "k",
        host: "vpc.example.test",
        http: "POST",
        method: SignatureMethod::HmacSha1,
        params: &[
            ("Action", "DescribeVpnConn"),
            ("Region", "bj"),
            ("Timestamp", "0"),
            ("Nonce", "1"),
            ("SecretId", "AKID-测试"),
            ("SignatureMethod", "HmacSHA1"),
            ("a_b", "underscore"),
            ("a.c", "dot"),
            ("aB", "upper"),
            ("ab", "lower"),
            ("Z", "zed"),
            ("empty", ""),
            ("at", "@"),
            ("unicodeKey_é", "日本語 ＋ 全角"),
        ],
        to_sign: "POSTvpc.example.test/v2/index.php?Action=DescribeVpnConn&Nonce=1&Region=bj\
                  &SecretId=AKID-测试&SignatureMethod=HmacSHA1&Timestamp=0&Z=zed&a.b=underscore&a.c=dot\
                  &aB=upper&ab=lower&empty=&unicodeKey.é=日本語 ＋ 全角",
        signature: "ncaZw+AuYzsMK2erpsbEFXIFJcw=",
        form: "Action=DescribeVpnConn&Region=bj&Timestamp=0&Nonce=1&SecretId=AKID-%E6%B5%8B%E8%AF%95\
               &SignatureMethod=HmacSHA1&a_b=underscore&a.c=dot&aB=upper&ab=lower&Z=zed&empty=&at=%40\
               &unicodeKey_%C3%A9=%E6%97%A5%E6%9C%AC%E8%AA%9E+%EF%BC%8B+%E5%85%A8%E8%A7%92",
    },
];

#[test]
fn official_sdk_vectors() {
    for v in SDK_VECTORS {
        let key = v.secret_key.as_bytes();
        let to_sign = string_to_sign(v.http, v.host, PATH, v.params, v.http == "POST");
        assert_eq!(to_sign, v.to_sign);
        check(key, v.method, &to_sign, v.signature);
        assert_eq!(encode_form(&owned(v.params)), v.form);

        // The server sees the Signature among the parameters; it must not sign itself.
        let mut received = v.params.to_vec();
        received.insert(3, ("Signature", v.signature));
        let server_side = string_to_sign(v.http, v.host, PATH, &received, v.http == "POST");
        assert!(verify(key, v.method, &server_side, v.signature));
    }
}

/// The same requests built by our own client must come out identical to the SDK's.
#[test]
fn signer_matches_official_sdk() {
    const COMMON: [&str; 6] = [
        "Action",
        "Region",
        "Timestamp",
        "Nonce",
        "SecretId",
        "SignatureMethod",
    ];
    for v in SDK_VECTORS {
        let value = |name: &str| {
            v.params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .expect(name)
        };
        let rest: Vec<(String, String)> = owned(v.params)
            .into_iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .collect();
        let signer = Signer {
            secret_id: value("SecretId"),
            secret_key: v.secret_key.as_bytes(),
            method: v.method,
        };
        let signed = signer.signed_params(
            v.http,
            v.host,
            PATH,
            value("Action"),
            value("Region"),
            value("Timestamp").parse().expect("timestamp"),
            value("Nonce").parse().expect("nonce"),
            &rest,
        );
        let signature_pair = ("Signature".to_owned(), v.signature.to_owned());
        assert_eq!(signed.last(), Some(&signature_pair));
        // The vectors list the common parameters first in the order the signer emits them.
        assert_eq!(&signed[..signed.len() - 1], owned(v.params).as_slice());
        assert_eq!(
            encode_form(&signed),
            format!("{}&{}", v.form, encode_form(&[signature_pair]))
        );
    }
}

/// API 3.0's v1-style form signature, as tencentcloud-sdk-python 3.1.195 builds it: CommonClient
/// ("vpc", "2017-03-12", region "ap-guangzhou"), `ClientProfile(signMethod=...)`,
/// `_build_req_inter("CreateVpnConnection", params, req)` with time.time() = 1700000000 and
/// random.randint() = 11886, `Sign.sign` wrapped to capture the string to sign. `form` is the
/// request data it sends (body on POST, query on GET).
struct Api3FormVector {
    http: &'static str,
    host: &'static str,
    method: SignatureMethod,
    form: &'static str,
    to_sign: &'static str,
}

const API3_FORM_VECTORS: &[Api3FormVector] = &[
    Api3FormVector {
        http: "POST",
        host: "127.0.0.1:18080",
        method: SignatureMethod::HmacSha256,
        form: "VpcId=vpc-amhnnao5&VpnConnectionName=conn+1&Note=%40kept&Filters.0.Name=n_x\
               &Filters.0.Values.0=v&Action=CreateVpnConnection&RequestClient=SDK_PYTHON_3.1.195\
               &Nonce=11886&Timestamp=1700000000&Version=2017-03-12&Region=ap-guangzhou\
               &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256&Language=zh-CN\
               &Signature=cEwRN%2F9Qvg%2BL7zZcGn0f9osqu45io1BYD9j5Ge1SzD0%3D",
        // The `@` value is signed: the 3.0 SDK has no v2-style exception.
        to_sign: "POST127.0.0.1:18080/?Action=CreateVpnConnection&Filters.0.Name=n_x&Filters.0.Values.0=v\
                  &Language=zh-CN&Nonce=11886&Note=@kept&Region=ap-guangzhou&RequestClient=SDK_PYTHON_3.1.195\
                  &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256\
                  &Timestamp=1700000000&Version=2017-03-12&VpcId=vpc-amhnnao5&VpnConnectionName=conn 1",
    },
    Api3FormVector {
        http: "GET",
        host: "vpc.tencentcloudapi.com",
        method: SignatureMethod::HmacSha1,
        form: "VpcId=vpc-amhnnao5&PreSharedKey=p%40ss+w%2Brd&Action=CreateVpnConnection\
               &RequestClient=SDK_PYTHON_3.1.195&Nonce=11886&Timestamp=1700000000&Version=2017-03-12\
               &Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA1\
               &Language=zh-CN&Signature=okBvGtYH2RV1V2FpIx%2BVfUZrBow%3D",
        to_sign: "GETvpc.tencentcloudapi.com/?Action=CreateVpnConnection&Language=zh-CN&Nonce=11886\
                  &PreSharedKey=p@ss w+rd&Region=ap-guangzhou&RequestClient=SDK_PYTHON_3.1.195\
                  &SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA1\
                  &Timestamp=1700000000&Version=2017-03-12&VpcId=vpc-amhnnao5",
    },
];

/// The server path for the 3.0 form: strict decoding, the signable check, the shared v2 algorithm
/// with path `/`, verification of the received `Signature`.
#[test]
fn api3_form_sdk_vectors() {
    for v in API3_FORM_VECTORS {
        let received = vpcd_auth::form::decode(v.form.as_bytes()).expect("SDK form decodes");
        vpcd_auth::form::check_signable(&received).expect("SDK pairs are signable");
        let pairs = borrowed(&received);
        let to_sign = vpcd_auth::api3_form_string_to_sign(v.http, v.host, &pairs);
        assert_eq!(to_sign, v.to_sign);
        let provided = pairs
            .iter()
            .find(|(k, _)| *k == "Signature")
            .map(|(_, s)| *s)
            .expect("Signature sent");
        check(VENDOR_KEY, v.method, &to_sign, provided);
        // The v2 path (`/v2/index.php`) and the v2 `@` rule give other strings.
        assert_ne!(string_to_sign(v.http, v.host, PATH, &pairs, true), to_sign);
    }
}
