//! The referrers API (distribution spec "Listing Referrers", end-12a and
//! end-12b), when [`super::Mode::referrers_api`] is on.

use super::api::{error, respond, Query};
use super::store::{State, Stored};
use axum::response::Response;
use cnab_oci::oci::media_type as mt;
use cnab_oci::Digest;
use serde_json::Value;

/// The descriptor of referrer `m` (digest `d`, parsed as `v`): its media
/// type, digest and size; `artifactType`, its own or else its config's
/// media type (none for an index without one); its annotations.
fn descriptor(d: &Digest, m: &Stored, v: &Value) -> Value {
    let mut entry = serde_json::json!({
        "mediaType": m.content_type,
        "digest": d.as_str(),
        "size": m.bytes.len(),
    });
    let artifact_type = v
        .get("artifactType")
        .or_else(|| v.get("config").and_then(|c| c.get("mediaType")))
        .and_then(Value::as_str);
    if let Some(t) = artifact_type {
        entry["artifactType"] = t.into();
    }
    if let Some(a) = v
        .get("annotations")
        .filter(|a| a.as_object().is_some_and(|o| !o.is_empty()))
    {
        entry["annotations"] = a.clone();
    }
    entry
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an OCI index of the
/// manifests in `name` whose `subject` is `digest`, in push order, `200`
/// even for a repository not pushed yet (a registry with the API "MUST NOT
/// return a 404"). With `artifactType`, only those of that type and
/// `OCI-Filters-Applied: artifactType`, unless the mode ignores the filter.
/// Pages of [`super::Mode::referrers_page_size`] entries, each with a `Link`
/// to the next while more remain. An invalid digest is `400`.
pub(super) fn list(s: &State, name: &str, digest: &str, q: &Query) -> Response {
    let Ok(subject) = Digest::parse(digest) else {
        return error(400, "DIGEST_INVALID", "invalid digest", digest);
    };
    let mut entries: Vec<(u64, Value)> = Vec::new();
    for (d, m) in s
        .repos
        .get(name)
        .map(|r| &r.manifests)
        .into_iter()
        .flatten()
    {
        let Ok(v) = serde_json::from_slice::<Value>(&m.bytes) else {
            continue;
        };
        let of = v
            .get("subject")
            .and_then(|x| x.get("digest"))
            .and_then(Value::as_str);
        if of == Some(subject.as_str()) {
            entries.push((m.seq, descriptor(d, m, &v)));
        }
    }
    entries.sort_by_key(|(seq, _)| *seq);
    let wanted = q.get("artifactType");
    let filter = wanted.filter(|_| s.mode.apply_artifact_type_filter);
    let all: Vec<Value> = entries
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| filter.is_none_or(|f| e["artifactType"].as_str() == Some(f)))
        .collect();
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let size = s.mode.referrers_page_size.unwrap_or(usize::MAX).max(1);
    let page: Vec<&Value> = all.iter().skip(offset).take(size).collect();
    let mut headers = vec![("content-type", mt::OCI_INDEX.to_owned())];
    if filter.is_some() {
        headers.push(("oci-filters-applied", "artifactType".to_owned()));
    }
    let next = offset + page.len();
    if next < all.len() {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = wanted {
            query.append_pair("artifactType", t);
        }
        query.append_pair("offset", &next.to_string());
        headers.push((
            "link",
            format!(
                "</v2/{name}/referrers/{subject}?{}>; rel=\"next\"",
                query.finish()
            ),
        ));
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": page,
    });
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    respond(200, &headers, serde_json::to_vec(&body).expect("json"))
}
