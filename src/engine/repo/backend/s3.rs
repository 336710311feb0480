//! The S3 backend: a repository stored under a key prefix in an S3 bucket, on AWS or any
//! S3-compatible server (MinIO, Ceph, Garage, moto, ...).
//!
//! This module owns everything S3-specific: parsing `s3://bucket/prefix` locations
//! ([`S3Config::parse_url`]), building the SDK client (credentials, region, endpoint,
//! retries and timeouts), the key layout (`{prefix}/{FileKind::path(name)}`), paginated
//! listings, ranged reads, single and multipart uploads, and turning SDK errors into
//! [`BackendError`]s that say what the user can do.
//!
//! Guarantees the repository relies on (see the parent module): a `PutObject` or a
//! completed multipart upload is atomic, and S3 has been strongly consistent
//! (read-after-write and list-after-write) since December 2020; S3-compatible servers are
//! expected to be as well.
//!
//! Uploads: files up to [`SINGLE_PUT_MAX`] go up in one `PutObject` streamed from disk;
//! larger ones in [`PART_SIZE`] parts, read from the file one at a time and sent up to
//! four at once, so memory stays bounded. A multipart upload that fails is aborted, and
//! one whose future is dropped is aborted in the background. An abort that fails too (or
//! a crash) leaves parts behind: the user is told through [`StoreStatus`] notices, and
//! `prune` removes such uploads older than a few hours
//! ([`Backend::clean_incomplete_uploads`]; an `AbortIncompleteMultipartUpload` lifecycle
//! rule does the same).
//!
//! Retries: none here. The SDK's own retries are off (they stop once an answer's headers
//! have arrived, so a body cut halfway was never retried); every error is classified
//! (transient or not) and [`super::retry::Retrying`] retries. Reads stream into a
//! [`PartialRead`] and continue with a ranged `GetObject` from where they stopped,
//! `If-Match` the first answer's ETag so that the pieces come from one version. A
//! `GetObject` whose answer has not begun after `SLOW_ANSWER` (doubled at each try) is
//! abandoned as a transient failure and sent again: one slow answer among many costs
//! seconds, not the whole delay.
//!
//! Integrity: against AWS the SDK's default request checksums (CRC32) stay on. Against a
//! custom endpoint they are only sent when an operation requires them, because several
//! S3-compatible servers reject or mishandle the SDK's streaming checksum trailers; set
//! `AWS_REQUEST_CHECKSUM_CALCULATION=when_supported` to turn them back on. The repository
//! layer authenticates every file's content anyway.

use std::fmt;
use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Backend, BackendError, BackendResult, FileInfo, FileKind, PartialRead, StoreStatus};

/// Files up to this size are uploaded with a single `PutObject`; larger ones in parts.
pub const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (grown only for files over 80 GiB, to
/// stay within S3's 10,000 parts).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3's limit on the number of parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// Parts of one file uploaded at once (each holds one part in memory).
const PART_CONCURRENCY: usize = 2;
/// Transfers worth running at once against S3.
const CONNECTIONS: usize = 8;
/// The region used when neither the configuration nor the environment names one.
const DEFAULT_REGION: &str = "us-east-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt of one request; generous enough to send a 64 MiB body on a slow link.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a `GetObject` waits for its answer's headers before it is given up and sent
/// again (S3 answers in tens of milliseconds; one answer in hundreds that takes seconds
/// would otherwise hold its whole job). Doubled at each try of the same read, so a
/// store that is slow for everyone is still waited for.
const SLOW_ANSWER: Duration = Duration::from_secs(3);

/// Where and how to reach a repository in S3.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix of the repository inside the bucket, without leading or trailing
    /// slash; empty for the bucket's root.
    pub prefix: String,
    /// A custom endpoint such as `http://127.0.0.1:9000`, for S3-compatible servers. When
    /// `None`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (or AWS itself) is used.
    pub endpoint: Option<String>,
    /// The region; when `None` it comes from the AWS chain (`AWS_REGION`, the profile),
    /// else `us-east-1`.
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (most
    /// S3-compatible servers need this).
    pub path_style: bool,
    /// The AWS profile to take credentials and settings from (else `AWS_PROFILE`, else
    /// `default`).
    pub profile: Option<String>,
    /// An access key id and secret access key to use instead of the AWS credential chain.
    pub static_credentials: Option<(String, String)>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("profile", &self.profile)
            .field(
                "static_credentials",
                &self
                    .static_credentials
                    .as_ref()
                    .map(|(id, _)| (id.as_str(), "<redacted>")),
            )
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is allowed).
    /// Every other field is left at its default.
    pub fn parse_url(url: &str) -> Result<S3Config, BackendError> {
        let invalid = |reason: String| BackendError::InvalidLocation {
            location: url.to_string(),
            reason,
        };
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(invalid(
                "an S3 location has the form s3://BUCKET or s3://BUCKET/PREFIX".to_string(),
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(
                "the bucket name is missing: use s3://BUCKET or s3://BUCKET/PREFIX".to_string(),
            ));
        }
        if let Err(reason) = check_bucket(bucket) {
            return Err(invalid(reason));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if let Err(reason) = check_prefix(prefix) {
            return Err(invalid(reason));
        }
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            ..S3Config::default()
        })
    }

    /// The location as the user writes it: `s3://bucket` or `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        format_location(&self.bucket, self.prefix.trim_matches('/'))
    }
}

fn format_location(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    }
}

fn check_bucket(bucket: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if bucket.len() > 255 || !bucket.chars().all(allowed) {
        let mut reason = format!(
            "{bucket:?} is not a bucket name: bucket names use letters, digits, '.', '-' and '_' only"
        );
        if bucket.contains(':') || bucket.contains('@') {
            reason.push_str(
                " (to use an S3-compatible server, give its address as the endpoint, not in the location)",
            );
        }
        return Err(reason);
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.split('/').any(str::is_empty) {
        return Err(format!(
            "the prefix {prefix:?} has an empty path segment (\"//\" or a leading or doubled trailing '/')"
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(format!("the prefix {prefix:?} contains control characters"));
    }
    Ok(())
}

/// A repository in an S3 bucket. Cheap to share: the SDK client pools its connections.
pub struct S3Backend {
    client: Client,
    bucket: String,
    /// Normalised: no leading or trailing slash.
    prefix: String,
    /// Notices for the user (uploads whose parts could not be removed).
    status: Arc<StoreStatus>,
    /// How another process reaches the same bucket.
    remote: super::RemoteStore,
    /// Where this client's credentials come from, to hand them to such a process.
    credentials: Option<aws_sdk_s3::config::SharedCredentialsProvider>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What an S3 request was about, for error messages and for telling a missing file from
/// a missing bucket.
#[derive(Clone, Copy)]
enum Target<'a> {
    File(FileKind, &'a str),
    Kind(FileKind),
    Bucket,
}

impl S3Backend {
    /// Builds a client for `cfg`. Does not contact the server: a missing bucket or bad
    /// credentials show up on the first request ([`Backend::create`] checks the bucket).
    pub async fn connect(cfg: S3Config) -> Result<S3Backend, BackendError> {
        let location = cfg.location();
        if cfg.bucket.is_empty() {
            return Err(BackendError::InvalidLocation {
                location,
                reason: "the bucket name is missing".to_string(),
            });
        }
        if let Err(reason) = check_bucket(&cfg.bucket) {
            return Err(BackendError::InvalidLocation { location, reason });
        }
        let prefix = cfg.prefix.trim_matches('/').to_string();
        if let Err(reason) = check_prefix(&prefix) {
            return Err(BackendError::InvalidLocation { location, reason });
        }
        if let Some(endpoint) = &cfg.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(BackendError::InvalidLocation {
                location,
                reason: format!(
                    "the endpoint {endpoint:?} must be a URL starting with http:// or https://"
                ),
            });
        }

        // Retries are `Retrying`'s, above this backend (see the module documentation).
        let retry = RetryConfig::disabled();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(profile) = &cfg.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &cfg.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((key_id, secret)) = &cfg.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                key_id.clone(),
                secret.clone(),
                None,
                None,
                "ferry-static",
            ));
        }
        let shared = loader.load().await;

        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            builder = builder.region(Region::new(DEFAULT_REGION));
        }
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if cfg.path_style {
            builder = builder.force_path_style(true);
        }
        let custom_endpoint = cfg.endpoint.is_some()
            || shared.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        if custom_endpoint {
            if shared.request_checksum_calculation().is_none() {
                builder =
                    builder.request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
            }
            if shared.response_checksum_validation().is_none() {
                builder =
                    builder.response_checksum_validation(ResponseChecksumValidation::WhenRequired);
            }
        }
        tracing::debug!(
            bucket = %cfg.bucket,
            prefix = %prefix,
            endpoint = ?cfg.endpoint,
            custom_endpoint,
            "S3 backend configured"
        );
        let conf = builder.build();
        let remote = super::RemoteStore {
            location: format_location(&cfg.bucket, &prefix),
            endpoint: cfg
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
                .or_else(|| shared.endpoint_url().map(str::to_string)),
            region: conf.region().map(|r| r.to_string()),
            path_style: cfg.path_style,
        };
        Ok(S3Backend {
            client: Client::from_conf(conf),
            bucket: cfg.bucket,
            prefix,
            status: Arc::default(),
            remote,
            credentials: shared.credentials_provider(),
        })
    }

    /// The bucket's key prefix of the repository root: empty, or `prefix/`.
    fn root(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn key(&self, kind: FileKind, name: &str) -> String {
        format!("{}{}", self.root(), kind.path(name))
    }

    /// The key prefix a listing of `kind` starts with.
    fn list_prefix(&self, kind: FileKind) -> String {
        match kind {
            FileKind::Config => self.key(FileKind::Config, ""),
            other => format!("{}{}/", self.root(), other.dir()),
        }
    }

    fn remote(&self, detail: String, transient: bool) -> BackendError {
        BackendError::Remote {
            location: self.location(),
            detail,
            transient,
        }
    }

    fn no_bucket(&self) -> BackendError {
        BackendError::NoRepository {
            location: format!(
                "{} (no such bucket: create the bucket {:?} first)",
                self.location(),
                self.bucket
            ),
        }
    }

    fn describe(&self, op: &str, target: Target<'_>) -> String {
        match target {
            Target::File(kind, name) => format!("{op} {}", self.key(kind, name)),
            Target::Kind(kind) => format!("{op} {}", self.list_prefix(kind)),
            Target::Bucket => format!("{op} bucket {}", self.bucket),
        }
    }

    /// Turns an SDK error into a [`BackendError`] that says what the user can do.
    fn sdk_error<E>(
        &self,
        op: &str,
        target: Target<'_>,
        err: SdkError<E, HttpResponse>,
    ) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = self.describe(op, target);
        let full = DisplayErrorContext(&err).to_string();
        tracing::debug!(error = %full, "{what} failed");
        // The whole source chain. For service errors, DisplayErrorContext's closing dump
        // of the raw response is left out: status, code, message and request id say it.
        let mut detail = match &err {
            SdkError::ServiceError(service) => {
                let mut detail = format!("{what}: HTTP {}", service.raw().status().as_u16());
                match (err.code(), err.message()) {
                    (Some(code), Some(message)) => {
                        detail.push_str(&format!(", {code}: {message}"));
                    }
                    (Some(code), None) => detail.push_str(&format!(", {code}")),
                    (None, _) => detail.push_str(&format!(": {}", error_chain(&err))),
                }
                if let Some(id) = err.request_id() {
                    detail.push_str(&format!(" (request id {id})"));
                }
                detail
            }
            _ => format!("{what}: {full}"),
        };
        match &err {
            SdkError::ServiceError(service) => {
                let raw = service.raw();
                let status = raw.status().as_u16();
                let code = err.code().unwrap_or_default();
                if code == "NoSuchBucket" {
                    return self.no_bucket();
                }
                if matches!(code, "NoSuchKey" | "NotFound") || status == 404 {
                    return match target {
                        Target::File(kind, name) => BackendError::NotFound {
                            kind,
                            name: name.to_string(),
                            location: self.location(),
                        },
                        Target::Kind(_) | Target::Bucket => self.no_bucket(),
                    };
                }
                if status == 403
                    || matches!(
                        code,
                        "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"
                    )
                {
                    return BackendError::PermissionDenied {
                        location: self.location(),
                        detail,
                    };
                }
                if status == 301
                    || matches!(code, "PermanentRedirect" | "AuthorizationHeaderMalformed")
                {
                    match raw.headers().get("x-amz-bucket-region") {
                        Some(region) => detail.push_str(&format!(
                            " (the bucket is in region {region}: set AWS_REGION={region} or the region option)"
                        )),
                        None => detail.push_str(
                            " (the bucket is in another region: set AWS_REGION or the region option)",
                        ),
                    }
                    return self.remote(detail, false);
                }
                let transient = status >= 500
                    || status == 429
                    || matches!(
                        code,
                        "SlowDown"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestTimeout"
                            | "RequestLimitExceeded"
                            | "InternalError"
                            | "ServiceUnavailable"
                    );
                self.remote(detail, transient)
            }
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => self.remote(detail, true),
            SdkError::DispatchFailure(failure) => {
                // I/O errors and timeouts are worth retrying; "other" failures happen
                // before sending (no credentials, a bad endpoint) and are not.
                let transient = failure.is_io() || failure.is_timeout();
                if !transient && detail.contains("credentials") {
                    detail.push_str(
                        " (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                    );
                }
                self.remote(detail, transient)
            }
            _ => self.remote(detail, false),
        }
    }

    /// One `GetObject` for the rest of a read (see [`Backend::read_resumable`]): the
    /// bytes from `offset + part.data.len()` up to `offset + length` (or the end),
    /// appended to `part` as they arrive.
    async fn get_into(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
        part: &mut PartialRead,
    ) -> BackendResult<()> {
        let target = Target::File(kind, name);
        let what = || self.describe("GetObject", target);
        let have = part.data.len() as u64;
        let start = offset.saturating_add(have);
        let end = match length {
            Some(0) => return Ok(()),
            Some(length) => match offset.checked_add(length) {
                Some(end) => Some(end),
                None => {
                    return Err(self.remote(
                        format!("{}: the range {offset}+{length} is out of bounds", what()),
                        false,
                    ));
                }
            },
            None => part.total,
        };
        if end.is_some_and(|end| start >= end) {
            return Ok(());
        }
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(kind, name));
        match end {
            Some(end) if length.is_some() || start > 0 => {
                request = request.range(format!("bytes={start}-{}", end - 1));
            }
            None if start > 0 => request = request.range(format!("bytes={start}-")),
            _ => {}
        }
        if let Some(version) = &part.version {
            request = request.if_match(version);
        }
        let patience = SLOW_ANSWER.saturating_mul(1 << part.tries.min(6));
        part.tries += 1;
        let Ok(sent) = tokio::time::timeout(patience, request.send()).await else {
            return Err(self.remote(
                format!("{}: no answer within {patience:?}; asking again", what()),
                true,
            ));
        };
        let response = match sent {
            Ok(response) => response,
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 412 => {
                // Replaced since the first piece arrived: start over.
                part.data.clear();
                part.version = None;
                part.total = None;
                return Err(self.remote(
                    format!(
                        "{}: the file changed while it was read; reading it again",
                        what()
                    ),
                    true,
                ));
            }
            Err(e) => return Err(self.sdk_error("GetObject", target, e)),
        };
        // The first answer fixes the version and the size; later ones must agree.
        if part.version.is_none() {
            part.version = response.e_tag().map(str::to_string);
        }
        let file_size = match response.content_range() {
            Some(range) => range
                .rsplit_once('/')
                .and_then(|(_, total)| total.parse::<u64>().ok()),
            None if start == 0 => response
                .content_length()
                .and_then(|n| u64::try_from(n).ok()),
            None => {
                return Err(self.remote(
                    format!(
                        "{}: asked for the bytes from {start} but the answer is not a range (the server ignored the Range header)",
                        what()
                    ),
                    false,
                ));
            }
        };
        if part.total.is_none() {
            part.total = file_size;
        }
        let end = match (length, file_size) {
            (Some(_), Some(size)) if end.is_some_and(|end| end > size) => {
                return Err(self.remote(
                    format!(
                        "{}: asked for {} bytes at offset {offset} but the file has {size} (it is shorter)",
                        what(),
                        length.unwrap_or_default()
                    ),
                    false,
                ));
            }
            (Some(_), _) => end,
            (None, size) => size,
        };
        if let Some(end) = end {
            part.data
                .reserve(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        }
        let mut body = response.body;
        loop {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => part.data.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(self.remote(
                        format!(
                            "{}: the connection broke after {} of {} bytes: {}",
                            what(),
                            part.data.len(),
                            end.map_or("?".to_string(), |end| (end - offset).to_string()),
                            DisplayErrorContext(&e)
                        ),
                        true,
                    ));
                }
            }
        }
        let got = offset + part.data.len() as u64;
        match end {
            Some(end) if got < end => Err(self.remote(
                format!(
                    "{}: the answer ended after {} of {} bytes",
                    what(),
                    part.data.len(),
                    end - offset
                ),
                true,
            )),
            Some(end) if got > end => Err(self.remote(
                format!(
                    "{}: the answer has {} bytes, more than the {} asked for",
                    what(),
                    part.data.len(),
                    end - offset
                ),
                false,
            )),
            _ => Ok(()),
        }
    }

    /// Aborts the multipart uploads under the repository's prefix that were started more
    /// than `older_than` ago (left by a crash, or by a failed upload whose abort failed
    /// too). Only keys of the repository's layout are touched.
    async fn abort_stale_uploads(&self, older_than: Duration) -> BackendResult<usize> {
        let root = self.root();
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut markers: (Option<String>, Option<String>) = (None, None);
        let mut aborted = 0;
        loop {
            let response = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&root)
                .set_key_marker(markers.0.clone())
                .set_upload_id_marker(markers.1.clone())
                .send()
                .await
                .map_err(|e| self.sdk_error("ListMultipartUploads", Target::Bucket, e))?;
            for upload in response.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let ours = key.strip_prefix(&root).is_some_and(is_layout_key);
                let old = upload
                    .initiated()
                    .is_some_and(|t| u64::try_from(t.secs()).unwrap_or(u64::MAX) <= cutoff);
                if !(ours && old) {
                    continue;
                }
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| self.sdk_error("AbortMultipartUpload", Target::Bucket, e))?;
                tracing::info!(
                    key,
                    upload_id = id,
                    "aborted an incomplete multipart upload"
                );
                aborted += 1;
            }
            let next = (
                response.next_key_marker().map(str::to_string),
                response.next_upload_id_marker().map(str::to_string),
            );
            if response.is_truncated() != Some(true) || next.0.is_none() || next == markers {
                break;
            }
            markers = next;
        }
        Ok(aborted)
    }

    /// Uploads `path` (of `size` bytes) to `key` in parts, aborting the upload on failure.
    async fn put_multipart(
        &self,
        target: Target<'_>,
        key: &str,
        path: &Path,
        size: u64,
    ) -> BackendResult<()> {
        let part_size = PART_SIZE.max(size.div_ceil(MAX_PARTS));
        let parts = size.div_ceil(part_size);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.sdk_error("CreateMultipartUpload", target, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(self.remote(
                format!(
                    "{}: the server returned no upload id",
                    self.describe("CreateMultipartUpload", target)
                ),
                false,
            ));
        };
        tracing::debug!(key, size, parts, part_size, "multipart upload started");
        // Aborts the upload if this future is dropped before it finishes.
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id: Some(upload_id.clone()),
            status: self.status.clone(),
        };

        let result = match self
            .upload_parts(target, key, &upload_id, path, size, part_size, parts)
            .await
        {
            Ok(completed) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(completed))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_error("CompleteMultipartUpload", target, e)),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                guard.upload_id = None;
                Ok(())
            }
            Err(e) => {
                guard.upload_id = None;
                self.abort(key, &upload_id).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        target: Target<'_>,
        key: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
        part_size: u64,
        parts: u64,
    ) -> BackendResult<Vec<CompletedPart>> {
        let io_error = |source: std::io::Error| BackendError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io_error)?;
        // One reader at a time; at most PART_CONCURRENCY parts in memory.
        let file = tokio::sync::Mutex::new(file);
        let file = &file;
        stream::iter(0..parts)
            .map(|index| async move {
                let offset = index * part_size;
                let length = part_size.min(size - offset);
                let part_number = i32::try_from(index + 1)
                    .map_err(|_| self.remote(format!("{key}: too many parts ({parts})"), false))?;
                let data = {
                    let mut file = file.lock().await;
                    file.seek(SeekFrom::Start(offset)).await.map_err(io_error)?;
                    let mut buf = vec![0u8; usize::try_from(length).unwrap_or(usize::MAX)];
                    file.read_exact(&mut buf).await.map_err(io_error)?;
                    Bytes::from(buf)
                };
                let response = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .map_err(|e| self.sdk_error("UploadPart", target, e))?;
                let Some(etag) = response.e_tag() else {
                    return Err(self.remote(
                        format!(
                            "{}: the server returned no ETag for part {part_number}",
                            self.describe("UploadPart", target)
                        ),
                        false,
                    ));
                };
                Ok(CompletedPart::builder()
                    .part_number(part_number)
                    .e_tag(etag)
                    .build())
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            self.status.notice(left_upload(
                &self.bucket,
                key,
                &DisplayErrorContext(&e).to_string(),
            ));
        }
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// True when `rest` (a key below the repository's root) is a file of the repository's
/// layout: `config`, `data/xx/name` or `<kind folder>/name`.
fn is_layout_key(rest: &str) -> bool {
    if rest == "config" {
        return true;
    }
    let Some((dir, name)) = rest.split_once('/') else {
        return false;
    };
    let name = match dir {
        "data" => match name.split_once('/') {
            Some((_, name)) => name,
            None => return false,
        },
        _ if FileKind::ALL
            .iter()
            .any(|k| !k.dir().is_empty() && k.dir() == dir) =>
        {
            name
        }
        _ => return false,
    };
    !name.is_empty() && !name.contains('/')
}

/// What the user is told when the parts of a failed or cancelled upload stay behind.
fn left_upload(bucket: &str, key: &str, error: &str) -> String {
    format!(
        "an interrupted upload of s3://{bucket}/{key} could not be removed ({error}): its parts stay in the bucket, using space, until the next `ferry prune` removes them (or a bucket lifecycle rule that aborts incomplete multipart uploads)"
    )
}

/// Aborts a multipart upload in the background if dropped while still armed (the upload
/// future was cancelled).
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
    status: Arc<StoreStatus>,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id);
        let (status, bucket, key) = (self.status.clone(), self.bucket.clone(), self.key.clone());
        runtime.spawn(async move {
            if let Err(e) = request.send().await {
                status.notice(left_upload(
                    &bucket,
                    &key,
                    &DisplayErrorContext(&e).to_string(),
                ));
            }
        });
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self) -> String {
        format_location(&self.bucket, &self.prefix)
    }

    fn remote(&self) -> Option<super::RemoteStore> {
        Some(self.remote.clone())
    }

    async fn remote_credentials(&self) -> BackendResult<Option<super::RemoteCredentials>> {
        use aws_sdk_s3::config::ProvideCredentials as _;
        let Some(provider) = &self.credentials else {
            return Ok(None);
        };
        let c =
            provider
                .provide_credentials()
                .await
                .map_err(|e| BackendError::PermissionDenied {
                    location: self.location(),
                    detail: format!(
                        "no credentials to hand to the cluster's agents: {}",
                        DisplayErrorContext(&e)
                    ),
                })?;
        Ok(Some(super::RemoteCredentials {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().map(str::to_string),
        }))
    }

    fn connections(&self) -> usize {
        CONNECTIONS
    }

    async fn create(&self) -> BackendResult<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.sdk_error("HeadBucket", Target::Bucket, e))?;
        match self.size(FileKind::Config, "config").await {
            Ok(_) => Err(BackendError::InvalidLocation {
                location: self.location(),
                reason: "a repository already exists there (its config file is present): use it, or choose another bucket or prefix".to_string(),
            }),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let prefix = self.list_prefix(kind);
        let mut files = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let response = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| self.sdk_error("ListObjectsV2", Target::Kind(kind), e))?;
            for object in response.contents() {
                let Some(rest) = object.key().and_then(|key| key.strip_prefix(&prefix)) else {
                    continue;
                };
                let name = match kind {
                    // The prefix is the whole key `{prefix}/config`.
                    FileKind::Config if rest.is_empty() => "config",
                    FileKind::Config => continue,
                    // `xx/name`
                    FileKind::Pack => match rest.split_once('/') {
                        Some((_, name)) if !name.is_empty() && !name.contains('/') => name,
                        _ => continue,
                    },
                    _ if rest.is_empty() || rest.contains('/') => continue,
                    _ => rest,
                };
                let size = object
                    .size()
                    .and_then(|size| u64::try_from(size).ok())
                    .unwrap_or(0);
                files.push(FileInfo {
                    name: name.to_string(),
                    size,
                });
            }
            let next = response
                .next_continuation_token()
                .filter(|_| response.is_truncated() == Some(true))
                .map(str::to_string);
            match next {
                None => break,
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(self.remote(
                        format!(
                            "{}: the server returned the same continuation token twice",
                            self.describe("ListObjectsV2", Target::Kind(kind))
                        ),
                        false,
                    ));
                }
                Some(next) => token = Some(next),
            }
        }
        Ok(files)
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let mut part = PartialRead::default();
        self.get_into(kind, name, 0, None, &mut part).await?;
        Ok(part.data.freeze())
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        let mut part = PartialRead::default();
        self.get_into(kind, name, offset, Some(length), &mut part)
            .await?;
        Ok(part.data.freeze())
    }

    async fn read_resumable(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
        part: &mut PartialRead,
    ) -> BackendResult<()> {
        self.get_into(kind, name, offset, length, part).await
    }

    fn status(&self) -> Option<Arc<StoreStatus>> {
        Some(self.status.clone())
    }

    async fn clean_incomplete_uploads(&self, older_than: Duration) -> BackendResult<usize> {
        self.abort_stale_uploads(older_than).await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let length = i64::try_from(data.len()).unwrap_or(i64::MAX);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(kind, name))
            .content_length(length)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.sdk_error("PutObject", Target::File(kind, name), e))?;
        Ok(())
    }

    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        let target = Target::File(kind, name);
        let io_error = |source: std::io::Error| BackendError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = tokio::fs::metadata(path).await.map_err(io_error)?.len();
        let key = self.key(kind, name);
        if size <= SINGLE_PUT_MAX {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| io_error(std::io::Error::other(e)))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_length(i64::try_from(size).unwrap_or(i64::MAX))
                .body(body)
                .send()
                .await
                .map_err(|e| self.sdk_error("PutObject", target, e))?;
        } else {
            self.put_multipart(target, &key, path, size).await?;
        }
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // The file is stored: a leftover staging file is not worth failing for.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an uploaded staging file")
            }
        }
        Ok(())
    }

    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(kind, name))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match self.sdk_error("DeleteObject", Target::File(kind, name), e) {
                BackendError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        let target = Target::File(kind, name);
        let response = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(kind, name))
            .send()
            .await
            .map_err(|e| self.sdk_error("HeadObject", target, e))?;
        match response.content_length().map(u64::try_from) {
            Some(Ok(size)) => Ok(size),
            _ => Err(self.remote(
                format!(
                    "{}: the response has no valid Content-Length",
                    self.describe("HeadObject", target)
                ),
                false,
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_url_accepts_bucket_and_prefix() {
        let cfg = S3Config::parse_url("s3://my-bucket").unwrap();
        assert_eq!(cfg.bucket, "my-bucket");
        assert_eq!(cfg.prefix, "");
        assert_eq!(cfg.location(), "s3://my-bucket");

        let cfg = S3Config::parse_url("s3://my-bucket/").unwrap();
        assert_eq!(
            (cfg.bucket.as_str(), cfg.prefix.as_str()),
            ("my-bucket", "")
        );

        let cfg = S3Config::parse_url("s3://my.bucket_1/some/prefix/").unwrap();
        assert_eq!(cfg.bucket, "my.bucket_1");
        assert_eq!(cfg.prefix, "some/prefix");
        assert_eq!(cfg.location(), "s3://my.bucket_1/some/prefix");
        assert!(cfg.endpoint.is_none() && cfg.region.is_none() && !cfg.path_style);
    }

    #[test]
    fn parse_url_rejects_bad_locations() {
        for url in [
            "",
            "bucket",
            "s3:/bucket",
            "http://bucket/x",
            "s3://",
            "s3:///prefix",
            "s3://bucket//x",
            "s3://bucket/a//b",
            "s3://bucket/x//",
            "s3://host:9000/bucket",
            "s3://bad bucket",
        ] {
            match S3Config::parse_url(url) {
                Err(BackendError::InvalidLocation { location, reason }) => {
                    assert_eq!(location, url);
                    assert!(!reason.is_empty());
                }
                other => panic!("{url:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn only_layout_keys_are_the_repository_s() {
        for key in [
            "config",
            "data/ab/abcd",
            "index/12",
            "locks/x",
            "snapshots/s",
        ] {
            assert!(is_layout_key(key), "{key}");
        }
        for key in [
            "",
            "other",
            "data/abcd",
            "data/ab/",
            "index/",
            "foo/bar",
            "data/ab/c/d",
        ] {
            assert!(!is_layout_key(key), "{key}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let cfg = S3Config {
            bucket: "b".into(),
            static_credentials: Some(("AKIDEXAMPLE".into(), "very-secret".into())),
            ..S3Config::default()
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("very-secret"));
    }

    #[tokio::test]
    async fn keys_follow_the_layout() {
        let cfg = S3Config {
            bucket: "b".into(),
            prefix: "/a/b/".into(),
            region: Some("us-east-1".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            static_credentials: Some(("k".into(), "s".into())),
            ..S3Config::default()
        };
        let backend = S3Backend::connect(cfg).await.unwrap();
        assert_eq!(backend.location(), "s3://b/a/b");
        assert_eq!(backend.key(FileKind::Config, "config"), "a/b/config");
        assert_eq!(backend.key(FileKind::Pack, "abcdef"), "a/b/data/ab/abcdef");
        assert_eq!(backend.list_prefix(FileKind::Pack), "a/b/data/");
        assert_eq!(backend.list_prefix(FileKind::Config), "a/b/config");
        assert_eq!(backend.connections(), 8);

        let cfg = S3Config {
            bucket: "b".into(),
            region: Some("us-east-1".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            static_credentials: Some(("k".into(), "s".into())),
            ..S3Config::default()
        };
        let backend = S3Backend::connect(cfg).await.unwrap();
        assert_eq!(backend.location(), "s3://b");
        assert_eq!(backend.key(FileKind::Key, "k1"), "keys/k1");
        assert_eq!(backend.list_prefix(FileKind::Snapshot), "snapshots/");
    }

    #[tokio::test]
    async fn connect_rejects_a_bad_endpoint() {
        let cfg = S3Config {
            bucket: "b".into(),
            endpoint: Some("127.0.0.1:9000".into()),
            ..S3Config::default()
        };
        assert!(matches!(
            S3Backend::connect(cfg).await,
            Err(BackendError::InvalidLocation { .. })
        ));
    }
}
