//! Where a passenger comes from: its id and source given as text, or numbered from an
//! [`Origin`] that the passengers of one source share, and written out only when read.
//! Extract makes a passenger per line, and most stops never read its id: numbering saves
//! formatting two strings per passenger, and lets a packer name the origin without parsing.

use std::sync::{Arc, OnceLock};

/// What the passengers read from one source share: passenger `n` has the id `<prefix><n>` and
/// the source `<key>:<n>` (no source without a key), as extract makes them
/// (`<ticket>:<line>`, `<object key>:<line>`).
#[derive(Debug, PartialEq, Eq)]
pub struct Origin {
    prefix: String,
    key: Option<String>,
}

impl Origin {
    /// The origin of ids `<prefix><n>` and sources `<key>:<n>`.
    pub fn new(prefix: impl Into<String>, key: Option<String>) -> Arc<Origin> {
        Arc::new(Origin {
            prefix: prefix.into(),
            key,
        })
    }

    /// What every id starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The source key, before `:<n>`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// A passenger's id and source.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// Given as text.
    Named { id: String, source: Option<String> },
    /// Number `n` of `origin`; the text is written the first time it is read (boxed: most
    /// passengers are never asked, and a bus holds many).
    Numbered {
        origin: Arc<Origin>,
        n: u64,
        written: OnceLock<Box<(String, Option<String>)>>,
    },
}

impl Place {
    /// Number `n` of `origin`.
    pub(crate) fn numbered(origin: Arc<Origin>, n: u64) -> Self {
        Place::Numbered {
            origin,
            n,
            written: OnceLock::new(),
        }
    }

    /// The id.
    pub(crate) fn id(&self) -> &str {
        self.text().0
    }

    /// The source, when known.
    pub(crate) fn source(&self) -> Option<&str> {
        self.text().1
    }

    /// The id and source, written out the first time a numbered place is asked.
    fn text(&self) -> (&str, Option<&str>) {
        let (id, source) = match self {
            Place::Named { id, source } => (id, source),
            Place::Numbered { origin, n, written } => {
                let text = written.get_or_init(|| Box::new(write(origin, *n)));
                (&text.0, &text.1)
            }
        };
        (id, source.as_deref())
    }

    /// The origin and number of a numbered place.
    pub(crate) fn number(&self) -> Option<(&Arc<Origin>, u64)> {
        match self {
            Place::Numbered { origin, n, .. } => Some((origin, *n)),
            Place::Named { .. } => None,
        }
    }

    /// The id and source, taken out.
    pub(crate) fn into_text(self) -> (String, Option<String>) {
        match self {
            Place::Named { id, source } => (id, source),
            Place::Numbered { origin, n, written } => written
                .into_inner()
                .map_or_else(|| write(&origin, n), |text| *text),
        }
    }
}

fn write(origin: &Origin, n: u64) -> (String, Option<String>) {
    let id = format!("{}{n}", origin.prefix);
    (id, origin.key.as_ref().map(|key| format!("{key}:{n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_place_reads_as_its_origin_and_number_say() {
        let place = Place::numbered(Origin::new("t1:", Some("in/a.csv".into())), 42);
        assert_eq!(place.id(), "t1:42");
        assert_eq!(place.source(), Some("in/a.csv:42"));
        let (id, source) = place.into_text();
        assert_eq!(
            (id.as_str(), source.as_deref()),
            ("t1:42", Some("in/a.csv:42"))
        );
        let place = Place::numbered(Origin::new("x", None), 7);
        assert_eq!((place.id(), place.source()), ("x7", None));
        assert_eq!(place.into_text(), ("x7".to_owned(), None));
    }
}
