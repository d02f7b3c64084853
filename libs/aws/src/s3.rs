//! The object-store port over S3: streaming GetObject, paginated ListObjectsV2, PutObject,
//! and multipart upload for large objects.

use crate::error::{classify, classify_with_status};
use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use busline_core::PortError;
use busline_core::ports::{ObjectInfo, ObjectReader, ObjectStore};

/// Objects above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each part (S3's minimum is 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// One S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    page_size: Option<i32>,
}

impl S3Store {
    /// GetObject with an optional `Range` header.
    async fn get_ranged(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<ObjectReader, PortError> {
        let ranged = range.is_some();
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await;
        match sent {
            Ok(output) => Ok(Box::pin(output.body.into_async_read())),
            // A range that starts at the end (a read resumed after the last byte) is refused
            // with 416: there is nothing left to read.
            Err(err) if ranged && status_of(&err) == Some(416) => Ok(Box::pin(tokio::io::empty())),
            // S3 answers a ranged GET of a missing key with a bare 404: the status decides.
            Err(err) => {
                let status = status_of(&err);
                Err(classify_with_status(err, status, &self.resource(key)))
            }
        }
    }

    /// The bucket `bucket`, reached through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            page_size: None,
        }
    }

    /// Lists at most `keys` keys per ListObjectsV2 page (S3's default and maximum is 1000).
    pub fn with_page_size(mut self, keys: i32) -> Self {
        self.page_size = Some(keys);
        self
    }

    fn resource(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), PortError> {
        let resource = self.resource(key);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|err| classify(err, &resource))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| {
                PortError::permanent(&resource, "CreateMultipartUpload returned no upload id")
            })?
            .to_owned();
        let uploaded = self.upload_parts(key, &upload_id, &body).await;
        let completed = match uploaded {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|err| classify(err, &resource)),
            Err(err) => Err(err),
        };
        if let Err(err) = &completed {
            // Leave no orphaned parts behind (they are billed); the original error is what matters.
            if let Err(abort) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(%resource, upload_id, error = %classify(abort, &resource), "could not abort multipart upload after: {err}");
            }
        }
        completed
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: &[u8],
    ) -> Result<Vec<CompletedPart>, PortError> {
        let resource = self.resource(key);
        let mut parts = Vec::new();
        for (index, chunk) in body.chunks(PART_SIZE).enumerate() {
            let number = i32::try_from(index + 1)
                .map_err(|_| PortError::permanent(&resource, "too many parts"))?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .map_err(|err| classify(err, &resource))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        Ok(parts)
    }
}

/// The HTTP status S3 answered a failed call with, if it answered.
fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let resource = self.resource(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| classify(err, &resource))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    objects.push(ObjectInfo {
                        key: key.to_owned(),
                        size: object.size().unwrap_or_default().max(0) as u64,
                    });
                }
            }
        }
        Ok(objects)
    }

    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError> {
        self.get_ranged(key, (offset > 0).then(|| format!("bytes={offset}-")))
            .await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<ObjectReader, PortError> {
        if length == 0 {
            return Ok(Box::pin(tokio::io::empty()));
        }
        let last = offset + length - 1;
        self.get_ranged(key, Some(format!("bytes={offset}-{last}")))
            .await
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), PortError> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, body, content_type).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify(err, &self.resource(key)))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, PortError> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // 412: an object has the key. (409, a write racing ours, is retried and then
            // finds it.)
            Err(err) if status_of(&err) == Some(412) => Ok(false),
            Err(err) => {
                let status = status_of(&err);
                Err(classify_with_status(err, status, &self.resource(key)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::Client;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::types::Object;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn list_follows_continuation_tokens() {
        let page = |keys: &[&str], next: Option<&str>| {
            let mut output = ListObjectsV2Output::builder()
                .set_next_continuation_token(next.map(str::to_owned))
                .is_truncated(next.is_some());
            for key in keys {
                output = output.contents(Object::builder().key(*key).size(3).build());
            }
            output.build()
        };
        let first = mock!(Client::list_objects_v2)
            .match_requests(|req| {
                req.continuation_token().is_none() && req.prefix() == Some("input/")
            })
            .then_output(move || page(&["input/a.csv", "input/b.csv"], Some("t1")));
        let second = mock!(Client::list_objects_v2)
            .match_requests(|req| req.continuation_token() == Some("t1"))
            .then_output(move || page(&["input/c.csv"], None));
        let store = S3Store::new(
            mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]),
            "data",
        );
        let keys: Vec<String> = store
            .list("input/")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["input/a.csv", "input/b.csv", "input/c.csv"]);
    }

    #[tokio::test]
    async fn get_streams_the_body_and_a_missing_key_is_not_found() {
        let found = mock!(Client::get_object)
            .match_requests(|req| req.key() == Some("input/a.csv"))
            .then_output(|| {
                GetObjectOutput::builder()
                    .body(ByteStream::from_static(b"Name\nRed\n"))
                    .build()
            });
        let missing = mock!(Client::get_object)
            .match_requests(|req| req.key() == Some("input/gone.csv"))
            .then_error(|| {
                // As S3 sends it: the code travels in the error's metadata.
                let meta = ErrorMetadata::builder().code("NoSuchKey").build();
                GetObjectError::NoSuchKey(NoSuchKey::builder().meta(meta).build())
            });
        let store = S3Store::new(
            mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&found, &missing]),
            "data",
        );
        let mut text = String::new();
        store
            .get("input/a.csv")
            .await
            .expect("get")
            .read_to_string(&mut text)
            .await
            .expect("read");
        assert_eq!(text, "Name\nRed\n");
        match store.get("input/gone.csv").await {
            Err(err) => assert!(
                matches!(&err, PortError::NotFound { resource } if resource == "s3://data/input/gone.csv"),
                "{err}"
            ),
            Ok(_) => panic!("a missing key must not read"),
        }
    }

    #[tokio::test]
    async fn a_read_resumed_at_the_end_reads_nothing_and_one_past_a_missing_key_is_not_found() {
        let answer = |status: u16| {
            move || {
                aws_sdk_s3::config::http::HttpResponse::new(
                    status.try_into().expect("a status"),
                    aws_smithy_types::body::SdkBody::from(""),
                )
            }
        };
        // S3 refuses a range that starts at the end with 416 InvalidRange.
        let at_end = mock!(Client::get_object)
            .match_requests(|req| req.range() == Some("bytes=9-") && req.key() == Some("a.csv"))
            .then_http_response(answer(416));
        let gone = mock!(Client::get_object)
            .match_requests(|req| req.key() == Some("gone.csv"))
            .then_http_response(answer(404));
        let store = S3Store::new(
            mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&at_end, &gone]),
            "data",
        );
        let mut text = String::new();
        store
            .get_from("a.csv", 9)
            .await
            .expect("nothing left is no error")
            .read_to_string(&mut text)
            .await
            .expect("read");
        assert_eq!(text, "");
        let err = store.get_from("gone.csv", 9).await.err().expect("missing");
        assert!(matches!(&err, PortError::NotFound { .. }), "{err}");
        assert_eq!(at_end.num_calls(), 1, "one request, no HEAD first");
    }
}
