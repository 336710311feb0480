//! EKS through the real AWS SDK clients against a local moto server: which account a
//! profile is, clusters listed and described, the envelope with node groups, and the
//! bearer token's presigned request as EKS checks it (sent to moto's STS).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::time::SystemTime;

use base64::Engine as _;
use ferry::providers::eks::{self, AwsAccount};
use support::moto::{ACCESS_KEY_ID, Moto, REGION, SECRET_ACCESS_KEY};

fn account(m: &Moto) -> AwsAccount {
    AwsAccount {
        profile: None,
        regions: vec![REGION.into()],
        endpoint: Some(m.endpoint.clone()),
        static_credentials: Some((ACCESS_KEY_ID.into(), SECRET_ACCESS_KEY.into())),
    }
}

async fn create_cluster(m: &Moto, name: &str) {
    let cfg = account(m).sdk_config(REGION).await;
    let eks = aws_sdk_eks::Client::new(&cfg);
    eks.create_cluster()
        .name(name)
        .version("1.31")
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .subnet_ids("subnet-2")
                .security_group_ids("sg-1")
                .build(),
        )
        .tags("team", "shop")
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name(name)
        .nodegroup_name("general")
        .node_role("arn:aws:iam::123456789012:role/node")
        .subnets("subnet-1")
        .instance_types("m6i.large")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(5)
                .desired_size(2)
                .build(),
        )
        .labels("role", "web")
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_of_an_account_are_listed_described_and_recorded() {
    let m = Moto::start();
    let acct = account(&m);
    let who = eks::identity(&acct, REGION).await.unwrap();
    assert_eq!(who.account, "123456789012");
    assert!(who.arn.starts_with("arn:aws:"), "{who:?}");

    create_cluster(&m, "prod-eks").await;
    create_cluster(&m, "qa-eks").await;
    let clusters = eks::list_clusters(&acct, REGION).await.unwrap();
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["prod-eks", "qa-eks"]);
    let prod = &clusters[0];
    assert_eq!(prod.version, "1.31");
    assert_eq!(prod.region, REGION);
    assert!(
        !prod.endpoint.is_empty() && !prod.certificate_authority.is_empty(),
        "{prod:?}"
    );
    assert_eq!(prod.tags.get("team").map(String::as_str), Some("shop"));

    let all = eks::list_all(std::slice::from_ref(&acct)).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].2.as_ref().unwrap().len(), 2);

    let env = eks::envelope(&acct, REGION, "prod-eks").await.unwrap();
    assert_eq!(env["version"], "1.31");
    assert_eq!(env["networking"]["subnetIds"][1], "subnet-2");
    let ng = &env["nodegroups"][0];
    assert_eq!(ng["name"], "general");
    assert_eq!(ng["instanceTypes"][0], "m6i.large");
    assert_eq!(ng["scaling"]["desired"], 2);
    assert_eq!(ng["labels"]["role"], "web");

    // An unknown cluster is an error that names it.
    let err = eks::envelope(&acct, REGION, "nope").await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// Sends a GET to `endpoint` with `path_and_query` and one extra header; returns the
/// status line and body.
fn http_get(endpoint: &str, path_and_query: &str, header: (&str, &str)) -> (String, String) {
    let hostport = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {hostport}\r\n{}: {}\r\nConnection: close\r\n\r\n",
        header.0, header.1
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_presigned_get_caller_identity_requests_naming_the_cluster() {
    let creds = aws_credential_types::Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        None,
        None,
        "test",
    );
    let t = eks::token(
        &creds,
        "eu-west-1",
        "prod-eks",
        &eks::sts_host("eu-west-1"),
        SystemTime::now(),
    )
    .unwrap();
    let b64 = t.strip_prefix("k8s-aws-v1.").expect("EKS token prefix");
    assert!(!b64.contains('='), "no padding");
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ),
        "{url}"
    );
    for want in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Expires=60",
        "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
        "%2Feu-west-1%2Fsts%2Faws4_request",
        "X-Amz-Signature=",
    ] {
        assert!(url.contains(want), "{want} missing from {url}");
    }
    // Another cluster name gives another signature: the token is bound to the cluster.
    let now = SystemTime::now();
    let a = eks::token(&creds, "eu-west-1", "a", &eks::sts_host("eu-west-1"), now).unwrap();
    let b = eks::token(&creds, "eu-west-1", "b", &eks::sts_host("eu-west-1"), now).unwrap();
    assert_ne!(a, b);

    // What EKS does with the token: send the request to STS with the cluster header.
    let m = Moto::start();
    let host = m.endpoint.trim_start_matches("http://").to_string();
    let t = eks::token(&creds, REGION, "prod-eks", &host, SystemTime::now()).unwrap();
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.trim_start_matches("k8s-aws-v1."))
            .unwrap(),
    )
    .unwrap();
    let path = &url[url.find("/?").unwrap()..];
    let (status, body) = http_get(&m.endpoint, path, ("x-k8s-aws-id", "prod-eks"));
    assert!(status.contains("200"), "{status}: {body}");
    assert!(
        body.contains("GetCallerIdentityResult") && body.contains("123456789012"),
        "{body}"
    );
}
