//! The XML documents S3 and STS answer with, parsed with quick-xml (entities decoded, so a key
//! with `&` comes back as itself). Unknown elements are ignored; a document that does not parse
//! is an error in words, never a panic.

use serde::Deserialize;

/// `<Error>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorDocument {
    /// `NoSuchBucket`, `AccessDenied`, ...
    pub code: String,
    /// The server's words.
    pub message: String,
    /// The bucket's region (wrong-region answers).
    pub region: String,
}

/// The error document in `body`; empty fields when there is none (HEAD answers have no body).
pub fn error_document(body: &str) -> ErrorDocument {
    if !body.contains("<Error") {
        return ErrorDocument::default();
    }
    // Some servers wrap it (`<ErrorResponse><Error>` in STS).
    let start = body.find("<Error>").or_else(|| body.find("<Error "));
    let doc = start.map(|s| &body[s..]).unwrap_or(body);
    let end = doc.find("</Error>").map(|e| e + "</Error>".len());
    quick_xml::de::from_str(end.map(|e| &doc[..e]).unwrap_or(doc)).unwrap_or_default()
}

/// Parse a document, naming it in the error.
pub fn parse<'de, T: Deserialize<'de>>(what: &str, body: &'de str) -> Result<T, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("unreadable {what} answer ({e})"))
}

/// `<ListBucketResult>` of ListObjectsV2.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListBucketResult {
    /// More pages follow.
    pub is_truncated: bool,
    /// The token for the next page.
    pub next_continuation_token: Option<String>,
    /// Objects.
    pub contents: Vec<Object>,
    /// "Directories" under the delimiter.
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One object of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// RFC 3339.
    pub last_modified: String,
}

/// One common prefix of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CommonPrefix {
    /// The prefix, ending in the delimiter.
    pub prefix: String,
}

/// `<ListVersionsResult>` of ListObjectVersions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListVersionsResult {
    /// More pages follow.
    pub is_truncated: bool,
    /// Where the next page starts.
    pub next_key_marker: Option<String>,
    /// Where the next page starts.
    pub next_version_id_marker: Option<String>,
    /// Object versions.
    pub version: Vec<Version>,
    /// Delete markers.
    pub delete_marker: Vec<Version>,
}

/// One version (or delete marker) of a key.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    /// The key.
    pub key: String,
    /// The version id.
    pub version_id: String,
    /// The current version of the key.
    pub is_latest: bool,
    /// RFC 3339.
    pub last_modified: String,
    /// Its size (versions only).
    pub size: u64,
}

/// `<InitiateMultipartUploadResult>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitiateMultipartUploadResult {
    /// The upload id.
    pub upload_id: String,
}

/// `<ListMultipartUploadsResult>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListMultipartUploadsResult {
    /// More pages follow.
    pub is_truncated: bool,
    /// Where the next page starts.
    pub next_key_marker: Option<String>,
    /// Where the next page starts.
    pub next_upload_id_marker: Option<String>,
    /// The uploads.
    pub upload: Vec<Upload>,
}

/// One incomplete multipart upload.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct Upload {
    /// Its key.
    pub key: String,
    /// Its id.
    pub upload_id: String,
    /// RFC 3339.
    pub initiated: String,
}

/// `<ObjectLockConfiguration>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ObjectLockConfiguration {
    /// "Enabled" when the bucket has Object Lock.
    pub object_lock_enabled: String,
}

/// STS `<AssumeRoleWithWebIdentityResponse>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AssumeRoleWithWebIdentityResponse {
    /// The result.
    pub assume_role_with_web_identity_result: AssumeRoleResult,
}

/// The result of an assume-role call.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AssumeRoleResult {
    /// The temporary credentials.
    pub credentials: StsCredentials,
}

/// Temporary credentials from STS.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: String,
    /// RFC 3339.
    pub expiration: String,
}

/// Escape text for an XML element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `<CompleteMultipartUpload>` body for parts `(number, etag)`, in order.
pub fn complete_multipart_body(parts: &[(u32, String)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
            escape(etag)
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_with_entities_and_pages() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>backups/</Prefix>
<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>tok=1</NextContinuationToken>
<Contents><Key>backups/a&amp;b/x.sql.gz</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>12</Size></Contents>
<Contents><Key>backups/c</Key><Size>0</Size></Contents>
<CommonPrefixes><Prefix>backups/db/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let r: ListBucketResult = parse("list", body).unwrap();
        assert!(r.is_truncated);
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok=1"));
        assert_eq!(r.contents.len(), 2);
        assert_eq!(r.contents[0].key, "backups/a&b/x.sql.gz");
        assert_eq!(r.contents[0].size, 12);
        assert_eq!(r.common_prefixes[0].prefix, "backups/db/");
        let empty: ListBucketResult = parse(
            "list",
            "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(empty.contents.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn versions_and_delete_markers_parse() {
        let body = r#"<ListVersionsResult><IsTruncated>false</IsTruncated>
<Version><Key>k</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest><LastModified>2026-01-01T00:00:00Z</LastModified><Size>3</Size></Version>
<DeleteMarker><Key>k2</Key><VersionId>d1</VersionId><IsLatest>true</IsLatest><LastModified>2026-01-01T00:00:00Z</LastModified></DeleteMarker>
</ListVersionsResult>"#;
        let r: ListVersionsResult = parse("versions", body).unwrap();
        assert_eq!(r.version.len(), 1);
        assert_eq!(r.delete_marker[0].version_id, "d1");
    }

    #[test]
    fn error_documents_in_any_wrapping() {
        let e = error_document("<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("NoSuchBucket", "gone")
        );
        let e = error_document(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad</Message></Error><RequestId>x</RequestId></ErrorResponse>"#,
        );
        assert_eq!(e.code, "InvalidIdentityToken");
        assert_eq!(error_document("").code, "");
        assert_eq!(error_document("<Error><Code>broken").code, "");
    }

    #[test]
    fn sts_credentials_parse() {
        let body = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-01-01T01:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        let r: AssumeRoleWithWebIdentityResponse = parse("sts", body).unwrap();
        let c = r.assume_role_with_web_identity_result.credentials;
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.expiration, "2026-01-01T01:00:00Z");
    }

    #[test]
    fn the_completion_body_escapes_etags() {
        assert_eq!(
            complete_multipart_body(&[(1, "\"a&b\"".into())]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&amp;b&quot;</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
