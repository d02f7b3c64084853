//! Pages of the API: the first request, one page's records, and the request of the page after.

use crate::settings::Pagination;
use serde_json::Value;
use url::Url;

/// The request of the first page: `url` with the pagination's first parameters.
pub fn first(pagination: &Pagination, url: &str) -> Result<String, String> {
    let mut url = Url::parse(url).map_err(|err| format!("{url}: {err}"))?;
    match pagination {
        Pagination::Page { param, start } => set(&mut url, param, &start.to_string()),
        Pagination::Offset {
            param,
            limit_param,
            size,
        } => {
            set(&mut url, param, "0");
            set(&mut url, limit_param, &size.to_string());
        }
        Pagination::None | Pagination::Cursor { .. } | Pagination::Link => {}
    }
    Ok(url.into())
}

/// `url` with the query parameter `name` set to `value` (replacing it when present).
fn set(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
}

/// The records of a page: the array at `pointer` (the page itself when empty).
pub fn records<'p>(page: &'p Value, pointer: &str) -> Result<&'p Vec<Value>, String> {
    let found = if pointer.is_empty() {
        Some(page)
    } else {
        page.pointer(pointer)
    };
    match found {
        Some(Value::Array(records)) => Ok(records),
        Some(other) => Err(format!(
            "the records at {:?} are not an array but {}",
            display(pointer),
            kind(other)
        )),
        None => Err(format!("the page has nothing at {:?}", display(pointer))),
    }
}

fn display(pointer: &str) -> &str {
    if pointer.is_empty() {
        "(the page)"
    } else {
        pointer
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The request of the page after the one `request` got (`page`, with `count` records and the
/// `Link` header `link`), or `None` when it was the last.
pub fn next(
    pagination: &Pagination,
    request: &str,
    page: &Value,
    count: usize,
    link: Option<&str>,
) -> Result<Option<String>, String> {
    let mut url = Url::parse(request).map_err(|err| format!("{request}: {err}"))?;
    let current = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    Ok(match pagination {
        Pagination::None => None,
        Pagination::Page { param, start } if count > 0 => {
            let number = current(param).unwrap_or(*start);
            set(&mut url, param, &(number + 1).to_string());
            Some(url.into())
        }
        Pagination::Offset { param, size, .. } if count as u64 >= *size => {
            let offset = current(param).unwrap_or(0);
            set(&mut url, param, &(offset + size).to_string());
            Some(url.into())
        }
        Pagination::Page { .. } | Pagination::Offset { .. } => None,
        Pagination::Cursor { param, pointer } => match page.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(cursor)) if cursor.is_empty() => None,
            Some(Value::String(cursor)) => {
                set(&mut url, param, cursor);
                Some(url.into())
            }
            Some(other) => {
                set(&mut url, param, &other.to_string());
                Some(url.into())
            }
        },
        Pagination::Link => {
            let Some(header) = link else { return Ok(None) };
            let links = parse_link_header::parse_with_rel(header)
                .map_err(|err| format!("the Link header {header:?} is malformed: {err:?}"))?;
            match links.get("next") {
                None => None,
                Some(next) => Some(
                    url.join(&next.raw_uri)
                        .map_err(|err| format!("the Link header's next {:?}: {err}", next.raw_uri))?
                        .into(),
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_pagination_finds_the_next_page_and_its_end() {
        let page = Pagination::Page {
            param: "page".into(),
            start: 1,
        };
        let first = first(&page, "http://api/colors?kind=all").expect("url");
        assert_eq!(first, "http://api/colors?kind=all&page=1");
        assert_eq!(
            next(&page, &first, &json!([]), 2, None),
            Ok(Some("http://api/colors?kind=all&page=2".into()))
        );
        assert_eq!(next(&page, &first, &json!([]), 0, None), Ok(None));
        let offset = Pagination::Offset {
            param: "offset".into(),
            limit_param: "limit".into(),
            size: 10,
        };
        let at = first_ok(&offset, "http://api/c");
        assert_eq!(at, "http://api/c?offset=0&limit=10");
        assert_eq!(
            next(&offset, &at, &json!([]), 10, None),
            Ok(Some("http://api/c?limit=10&offset=10".into()))
        );
        assert_eq!(next(&offset, &at, &json!([]), 9, None), Ok(None));
        let cursor = Pagination::Cursor {
            param: "cursor".into(),
            pointer: "/next".into(),
        };
        assert_eq!(
            next(&cursor, "http://api/c", &json!({"next": "abc"}), 5, None),
            Ok(Some("http://api/c?cursor=abc".into()))
        );
        assert_eq!(
            next(&cursor, "http://api/c", &json!({"next": null}), 5, None),
            Ok(None)
        );
        assert_eq!(
            next(
                &Pagination::Link,
                "http://api/c?page=1",
                &json!([]),
                5,
                Some(r#"</c?page=2>; rel="next", </c?page=1>; rel="first""#)
            ),
            Ok(Some("http://api/c?page=2".into()))
        );
        assert_eq!(
            next(&Pagination::Link, "http://api/c", &json!([]), 5, None),
            Ok(None)
        );
    }

    fn first_ok(pagination: &Pagination, url: &str) -> String {
        first(pagination, url).expect("url")
    }

    #[test]
    fn records_are_found_at_their_pointer_or_the_page_is_refused_with_why() {
        let page = json!({"data": [{"a": 1}], "meta": {"n": 1}});
        assert_eq!(records(&page, "/data").map(Vec::len), Ok(1));
        assert_eq!(
            records(&page, "/items"),
            Err("the page has nothing at \"/items\"".into())
        );
        assert_eq!(
            records(&page, "/meta"),
            Err("the records at \"/meta\" are not an array but an object".into())
        );
        assert_eq!(records(&json!([1, 2]), "").map(Vec::len), Ok(2));
    }
}
