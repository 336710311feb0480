//! EKS through the real AWS SDK clients against a local moto server: which account a
//! profile is, clusters listed and described, the envelope with node groups, and the
//! bearer token's presigned request as EKS checks it (sent to moto's STS).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::SystemTime;

use base64::Engine as _;
use ferry_providers::eks::{self, AwsAccount};
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

    // Every origin of the linked accounts, as the console and `ferry clusters` list them.
    use futures::StreamExt as _;
    let clouds = ferry_providers::cloud::Clouds::default().with(eks::Aws::new(vec![acct.clone()]));
    assert_eq!(clouds.origins().len(), 1);
    let all: Vec<_> = clouds.list().collect().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.label(), format!("aws {} {REGION}", acct.label()));
    let names: Vec<String> = all[0]
        .1
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            eks::context_name(&acct.label(), REGION, "prod-eks"),
            eks::context_name(&acct.label(), REGION, "qa-eks")
        ]
    );

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

/// Checks a presigned STS URL the way STS does, with an independent SigV4
/// implementation: rebuilds the canonical request from the URL and the headers EKS
/// sends, derives the signing key from the secret and compares the signature.
fn verify_presigned(url: &str, headers: &[(&str, &str)], secret: &str) -> Result<(), String> {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let rest = url.strip_prefix("https://").ok_or("not https")?;
    let (host, pq) = rest.split_at(rest.find('/').ok_or("no path")?);
    let (path, query) = pq.split_once('?').ok_or("no query")?;
    let mut params: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let signature = get("X-Amz-Signature").ok_or("unsigned")?;
    let date = get("X-Amz-Date").ok_or("no date")?;
    let credential = get("X-Amz-Credential")
        .ok_or("no credential")?
        .replace("%2F", "/");
    let signed = get("X-Amz-SignedHeaders")
        .ok_or("no signed headers")?
        .replace("%3B", ";");
    let scope = credential
        .split_once('/')
        .ok_or("bad credential")?
        .1
        .to_string();
    let parts: Vec<&str> = scope.split('/').collect();
    let [day, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(format!("bad scope {scope}"));
    };
    params.retain(|(k, _)| k != "X-Amz-Signature");
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut all_headers: Vec<(String, String)> = vec![("host".into(), host.to_string())];
    all_headers.extend(
        headers
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.to_string())),
    );
    all_headers.sort();
    let names: Vec<&str> = all_headers.iter().map(|(k, _)| k.as_str()).collect();
    if names.join(";") != signed {
        return Err(format!(
            "signed headers {signed} but sent {}",
            names.join(";")
        ));
    }
    let canonical_headers: String = all_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}\n"))
        .collect();
    let empty = hex::encode(Sha256::digest(b""));
    let canonical =
        format!("GET\n{path}\n{canonical_query}\n{canonical_headers}\n{signed}\n{empty}");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    let expect = hex::encode(hmac(&k, &to_sign));
    if expect == signature {
        Ok(())
    } else {
        Err("signature mismatch".into())
    }
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

    // What STS does with it: the signature checks out for the headers EKS sends, and
    // not for another cluster name or another secret.
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.trim_start_matches("k8s-aws-v1."))
            .unwrap(),
    )
    .unwrap();
    verify_presigned(&url, &[("x-k8s-aws-id", "prod-eks")], SECRET_ACCESS_KEY).unwrap();
    assert!(verify_presigned(&url, &[("x-k8s-aws-id", "other")], SECRET_ACCESS_KEY).is_err());
    assert!(verify_presigned(&url, &[("x-k8s-aws-id", "prod-eks")], "wrong").is_err());
    assert!(verify_presigned(&url, &[], SECRET_ACCESS_KEY).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_and_node_groups_are_created_and_waited_for_through_the_sdk() {
    let m = Moto::start();
    let acct = account(&m);
    let spec = eks::ClusterSpec {
        name: "restore-target".into(),
        version: "1.31".into(),
        role_arn: "arn:aws:iam::123456789012:role/eks".into(),
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        endpoint_public_access: true,
        nodegroups: vec![eks::NodegroupSpec {
            name: "general".into(),
            instance_types: vec!["m6i.large".into()],
            min_size: 1,
            max_size: 3,
            desired_size: 2,
            labels: [("role".to_string(), "web".to_string())].into(),
            node_role: "arn:aws:iam::123456789012:role/node".into(),
            ..Default::default()
        }],
        // moto's clusters have no API server to put a StorageClass into.
        addons: vec![],
        storage_class: None,
        ..Default::default()
    };
    let events = std::sync::Mutex::new(Vec::new());
    let record = |e: eks::CreateEvent| events.lock().unwrap().push(e);
    let opts = eks::CreateOptions {
        poll: std::time::Duration::from_millis(50),
        max_poll: std::time::Duration::from_millis(200),
        limit: std::time::Duration::from_secs(60),
    };
    let c = eks::create_cluster(&acct, REGION, &spec, Some("v1.30.4"), &opts, &record)
        .await
        .unwrap();
    assert_eq!(c.name, "restore-target");
    assert_eq!(c.status, "ACTIVE");
    let events = events.into_inner().unwrap();
    assert!(
        events.contains(&eks::CreateEvent::Ready("cluster restore-target".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&eks::CreateEvent::Ready("node group general".into())),
        "{events:?}"
    );
    let described = eks::describe(&acct, REGION, "restore-target")
        .await
        .unwrap();
    assert_eq!(described.version, "1.31");
    let env = eks::envelope(&acct, REGION, "restore-target")
        .await
        .unwrap();
    assert_eq!(env["nodegroups"][0]["scaling"]["desired"], 2);
    assert_eq!(env["nodegroups"][0]["labels"]["role"], "web");

    // Running it again reuses what exists; an older version than the source is refused.
    eks::create_cluster(&acct, REGION, &spec, None, &opts, &|_| {})
        .await
        .unwrap();
    let err = eks::create_cluster(&acct, REGION, &spec, Some("1.32"), &opts, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("older than the source"), "{err}");
    // A region without clusters lists none.
    assert!(
        eks::list_clusters(&acct, "eu-west-3")
            .await
            .unwrap()
            .is_empty()
    );
}
